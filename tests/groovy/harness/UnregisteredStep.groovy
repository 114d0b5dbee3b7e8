package harness

/** A step the library calls that the harness (and so, presumably, the plugin list) does not offer. */
class UnregisteredStep extends Error {
    UnregisteredStep(String name) {
        super("step '${name}' is not registered in the harness: add it to the allowed steps (and to docs/jenkins.md plugins) or do not use it")
    }
}
