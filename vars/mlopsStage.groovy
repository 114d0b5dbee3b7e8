/*
 * The scripted form of a declarative `when`: a stage whose body runs only when its condition holds,
 * else is shown as skipped (Blue Ocean, stage view) with the reason echoed. Both lines build their
 * stages with it, so a failure names the stage it happened in (state.stage).
 */

def call(Map config = [:], Closure body) {
    Map defaults = [
        name: null,         // the stage's name
        when: true,         // run the body only when this holds
        skipReason: '',     // echoed (and kept in state.skipped, where the state has that map) when skipped
        state: [:],         // the line's state: state.stage names the running stage
    ]
    Map cfg = mlopsOptions(step: 'mlopsStage', defaults: defaults, config: config, required: ['name'])
    stage(cfg.name) {
        if (cfg.when) {
            cfg.state.stage = cfg.name
            body()
        } else {
            if (cfg.state.skipped instanceof Map) {
                cfg.state.skipped[cfg.name] = cfg.skipReason
            }
            echo "skipped: ${cfg.skipReason}"
            markSkipped(cfg.name)
        }
    }
}

/**
 * Shows the stage as skipped as a declarative `when` does: pipeline-model-definition's
 * Utils.markStageSkippedForConditional (jenkins-infra/pipeline-library does the same). Looked up by name
 * so that the library still loads where that plugin is not installed.
 */
@NonCPS
boolean markSkipped(String name) {
    try {
        Class utils = getClass().classLoader.loadClass('org.jenkinsci.plugins.pipeline.modeldefinition.Utils')
        utils.markStageSkippedForConditional(name)
        return true
    } catch (ClassNotFoundException ignored) {
        return false
    }
}
