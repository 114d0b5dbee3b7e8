/*
 * Deployment through `mlops deploy ...`: render the SeldonDeployment of the champion, push it to
 * the GitOps repository, wait for Argo CD, smoke-test the endpoint (or serve it locally).
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'render',                            // render | push | wait | serve | smoke | stop
        gitopsCredentialsId: 'mlops-github-token',    // push, wait: secret text bound as GITHUB_TOKEN for the GitOps remote; '' = none (local bare repo)
        kubeconfigCredentialsId: 'mlops-kubeconfig',  // wait, smoke: secret file bound as KUBECONFIG; '' = none
        retries: null,                                // extra attempts; null = per command (push 1, wait 2, smoke 2, others 0)
        timeoutMinutes: 20,                           // limit for wait, serve and smoke; wait passes it on as timeout_minutes
        params: [:],                                  // options of the command, e.g. wait: [revision: sha, rollback_on_failure: true]
    ]
    Map cfg = mlopsOptions(step: 'mlopsDeploy', defaults: defaults, config: config,
                           choices: [command: ['render', 'push', 'wait', 'serve', 'smoke', 'stop']])
    cfg.retries = retriesFor(cfg.command, cfg.retries, cfg.params)
    Map params = cfg.params
    if (cfg.command == 'wait' && !params.containsKey('timeout_minutes')) {
        // the CLI's own limit ends the wait with Argo CD's last state (exit 1) before Jenkins' timeout aborts it
        params = params + [timeout_minutes: cfg.timeoutMinutes]
    }
    List bindings = []
    // wait reads the GitOps branch (which commits contain the pushed one) and may push a revert
    if (cfg.command in ['push', 'wait'] && cfg.gitopsCredentialsId) {
        bindings << string(credentialsId: cfg.gitopsCredentialsId, variable: 'GITHUB_TOKEN')
    }
    if (cfg.command in ['wait', 'smoke'] && cfg.kubeconfigCredentialsId) {
        bindings << file(credentialsId: cfg.kubeconfigCredentialsId, variable: 'KUBECONFIG')
    }
    Map result = [:]
    timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
        if (bindings) {
            withCredentials(bindings) {
                result = mlopsCli(command: "deploy ${cfg.command}", params: params, retries: cfg.retries)
            }
        } else {
            result = mlopsCli(command: "deploy ${cfg.command}", params: params, retries: cfg.retries)
        }
    }
    return result
}

/**
 * Pushing an unchanged manifest, waiting and smoke-testing are safe to repeat; render, serve and stop are not retried.
 * A wait that rolls back is not repeated either: the retry would wait for the revert commit and report its success.
 */
int retriesFor(String command, Object given, Map params) {
    boolean rollsBack = command == 'wait' && params.rollback_on_failure
    if (given != null) {
        if (!(given instanceof Integer) || given < 0) {
            error("mlopsDeploy: option 'retries' must be a whole number >= 0 or null (got ${given})")
        }
        if (rollsBack && given > 0) {
            error("mlopsDeploy: option 'retries' must be 0 with params.rollback_on_failure (got ${given})")
        }
        return given
    }
    return rollsBack ? 0 : ([push: 1, wait: 2, smoke: 2][command] ?: 0)
}
