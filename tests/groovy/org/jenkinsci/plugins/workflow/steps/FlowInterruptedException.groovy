package org.jenkinsci.plugins.workflow.steps

/**
 * Test double of workflow-step-api's FlowInterruptedException: what a step throws when the build is
 * aborted (by a user, by a newer build) or a `timeout` expires. Like the real one it extends
 * InterruptedException, has no message (so `err.message` is null) and carries the result and the causes
 * of interruption (jenkins.model.CauseOfInterruption.UserInterruption, TimeoutStepExecution.ExceededTimeout).
 */
class FlowInterruptedException extends InterruptedException {
    final String result
    final List causes

    FlowInterruptedException(String result, Object... causes) {
        super()
        this.result = result
        this.causes = causes as List
    }
}
