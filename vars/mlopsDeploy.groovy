/*
 * Deployment through `mlops deploy ...`: render the SeldonDeployment of the champion, push it to
 * the GitOps repository, wait for Argo CD, smoke-test the endpoint (or serve it locally).
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'render',                            // render | push | wait | serve | smoke | stop
        gitopsCredentialsId: 'mlops-github-token',    // push: secret text bound as GITHUB_TOKEN for the GitOps remote; '' = none (local bare repo)
        kubeconfigCredentialsId: 'mlops-kubeconfig',  // wait, smoke: secret file bound as KUBECONFIG; '' = none
        retries: null,                                // extra attempts; null = per command (push 1, wait 2, smoke 2, others 0)
        timeoutMinutes: 20,                           // limit for wait, serve and smoke
        params: [:],                                  // options of the command
    ]
    Map cfg = mlopsOptions(step: 'mlopsDeploy', defaults: defaults, config: config,
                           choices: [command: ['render', 'push', 'wait', 'serve', 'smoke', 'stop']])
    cfg.retries = retriesFor(cfg.command, cfg.retries)
    List bindings = []
    if (cfg.command == 'push' && cfg.gitopsCredentialsId) {
        bindings << string(credentialsId: cfg.gitopsCredentialsId, variable: 'GITHUB_TOKEN')
    }
    if (cfg.command in ['wait', 'smoke'] && cfg.kubeconfigCredentialsId) {
        bindings << file(credentialsId: cfg.kubeconfigCredentialsId, variable: 'KUBECONFIG')
    }
    Map result = [:]
    timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
        if (bindings) {
            withCredentials(bindings) {
                result = mlopsCli(command: "deploy ${cfg.command}", params: cfg.params, retries: cfg.retries)
            }
        } else {
            result = mlopsCli(command: "deploy ${cfg.command}", params: cfg.params, retries: cfg.retries)
        }
    }
    return result
}

/** Pushing an unchanged manifest, waiting and smoke-testing are safe to repeat; render, serve and stop are not retried. */
int retriesFor(String command, Object given) {
    if (given != null) {
        if (!(given instanceof Integer) || given < 0) {
            error("mlopsDeploy: option 'retries' must be a whole number >= 0 or null (got ${given})")
        }
        return given
    }
    return [push: 1, wait: 2, smoke: 2][command] ?: 0
}
