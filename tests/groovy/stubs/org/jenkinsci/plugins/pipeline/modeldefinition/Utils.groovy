package org.jenkinsci.plugins.pipeline.modeldefinition

/**
 * Test double of pipeline-model-definition's Utils (present only where that plugin is installed).
 * The real markStageSkippedForConditional(String) tags the FlowNodes of the stages with that name as
 * "skipped for conditional", which Blue Ocean and the stage view draw as skipped; this one records the name.
 * jenkins-infra/pipeline-library's vars/updatecli.groovy calls it the same way.
 */
class Utils {
    static final List<String> SKIPPED = []

    static void markStageSkippedForConditional(String stageName) {
        SKIPPED << stageName
    }
}
