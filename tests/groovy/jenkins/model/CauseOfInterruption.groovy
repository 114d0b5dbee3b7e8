package jenkins.model

/** Test double of Jenkins core's CauseOfInterruption (why a build was interrupted). */
class CauseOfInterruption {
    /** A user pressed the stop button. */
    static class UserInterruption extends CauseOfInterruption {
        String user = 'alice'
    }
}
