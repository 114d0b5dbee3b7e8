package harness

/** A global variable of the library (vars/NAME.groovy): `NAME(...)` runs its call() and is recorded. */
class LibraryVar extends Closure {

    private final String varName
    private final Script varScript
    private final PipelineHarness harness

    LibraryVar(String name, Script script, PipelineHarness harness) {
        super(script, script)
        this.varName = name
        this.varScript = script
        this.harness = harness
    }

    // explicit getters: property access on a Closure would go to its owner
    String varName() { varName }

    Script varScript() { varScript }

    Object doCall(Object... args) {
        return harness.callLibraryVar(this, args)
    }
}
