package harness

/** Base class for jobs/*.groovy under test: top-level DSL calls go to the recording root node. */
abstract class JobDslScript extends Script {

    def methodMissing(String name, Object args) {
        DslNode root = (DslNode) binding.getVariable('__dsl')
        return root.methodMissing(name, args)
    }
}
