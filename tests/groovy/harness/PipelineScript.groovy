package harness

/**
 * Base class of every vars/*.groovy script loaded by the harness. Jenkins resolves an unknown
 * method in a pipeline script to a step; here it goes to the harness, which records the call and
 * fails on steps that are not registered (so a step that is missing in Jenkins is caught).
 */
abstract class PipelineScript extends Script {

    def methodMissing(String name, Object args) {
        PipelineHarness harness = (PipelineHarness) binding.getVariable('__harness')
        return harness.invokeStep(name, args as Object[])
    }
}
