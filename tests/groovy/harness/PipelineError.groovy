package harness

/** What the `error` step and a failing `sh` throw (Jenkins throws hudson.AbortException). */
class PipelineError extends RuntimeException {
    PipelineError(String message) {
        super(message)
    }
}
