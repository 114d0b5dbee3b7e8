package harness

/**
 * Base of the Groovy test classes: a fresh harness per test (`h`), helpers to answer `mlops`, and
 * assertions for failures. The runner (tests/groovy/run.groovy) calls setUp, each test method, then tearDown.
 */
abstract class StepTestCase {

    static final File ROOT = new File(System.getProperty('mlops.root', '.')).canonicalFile

    PipelineHarness h

    void setUp() {
        h = new PipelineHarness(ROOT)
    }

    void tearDown() {
        h?.cleanup()
    }

    /** Whether a step takes a block (its call ends in `Closure body`), read from vars/NAME.groovy. */
    static boolean takesBlock(String step) {
        new File(ROOT, "vars/${step}.groovy").text =~ /def call\([^)]*Closure body\)/
    }

    /** Answer every `mlops` call with exit 0 and a JSON document chosen by command. */
    void answerMlops(Map<String, Object> byCommand) {
        h.mlopsHandler = { Map call ->
            Object doc = byCommand.containsKey(call.command) ? byCommand[call.command] : [:]
            return doc instanceof Closure ? ((Closure) doc).call(call) : [exitCode: 0, json: doc]
        }
    }

    /** Run body, expect it to fail with a PipelineError whose message contains every fragment. */
    String expectError(List<String> fragments, Closure body) {
        try {
            body.call()
        } catch (PipelineError e) {
            fragments.each { String f -> assert e.message.contains(f): "error message lacks '${f}': ${e.message}" }
            return e.message
        }
        throw new AssertionError((Object) "expected an error containing ${fragments}")
    }

    String expectError(String fragment, Closure body) { expectError([fragment], body) }

    List<String> commands() { h.mlopsCalls*.command }

    Map lastParams() { h.mlopsCalls[-1].params }
}
