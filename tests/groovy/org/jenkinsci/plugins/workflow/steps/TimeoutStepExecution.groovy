package org.jenkinsci.plugins.workflow.steps

import jenkins.model.CauseOfInterruption

/** Test double of workflow-basic-steps' TimeoutStepExecution: only its cause of interruption. */
class TimeoutStepExecution {
    /** The cause a `timeout` that expired puts into FlowInterruptedException. */
    static class ExceededTimeout extends CauseOfInterruption {
    }
}
