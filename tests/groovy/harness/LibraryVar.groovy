package harness

/** A global variable of the library (vars/NAME.groovy): `NAME(...)` runs its call() and is recorded. */
class LibraryVar extends Closure {

    final String name
    final Script script
    final PipelineHarness harness

    LibraryVar(String name, Script script, PipelineHarness harness) {
        super(script, script)
        this.name = name
        this.script = script
        this.harness = harness
    }

    Object doCall(Object... args) {
        return harness.callLibraryVar(this, args)
    }
}
