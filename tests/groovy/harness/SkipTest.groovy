package harness

/** Thrown by a test that cannot run here; the runner reports it as skipped with the reason. */
class SkipTest extends RuntimeException {
    SkipTest(String reason) {
        super(reason)
    }
}
