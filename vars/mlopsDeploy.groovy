/*
 * Deployment through `mlops deploy ...`: render the champion's SeldonDeployment or InferenceService
 * (deploy.target), push it to the GitOps repository, wait for Argo CD, smoke-test the endpoint (or
 * serve it locally).
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'render',                            // render | push | wait | serve | smoke | stop
        gitopsCredentialsId: 'mlops-github-token',    // push, wait: secret text bound as GITHUB_TOKEN for the GitOps remote; '' = none (local bare repo)
        kubeconfigCredentialsId: 'mlops-kubeconfig',  // wait, smoke: secret file bound as KUBECONFIG; '' = none
        retries: null,                                // extra attempts; null = per command (push 1, wait 2, smoke 2, others 0)
        timeoutMinutes: 20,                           // wait: the CLI's own limit of one attempt (timeout_minutes); serve, smoke: Jenkins' limit
        graceMinutes: 5,                              // wait: Jenkins' timeout = every attempt's CLI limit + this, so the CLI ends first (exit 1)
        params: [:],                                  // options of the command, e.g. wait: [revision: sha, rollback_on_failure: true]
    ]
    Map cfg = mlopsOptions(step: 'mlopsDeploy', defaults: defaults, config: config,
                           choices: [command: ['render', 'push', 'wait', 'serve', 'smoke', 'stop']])
    cfg.retries = retriesFor(cfg.command, cfg.retries, cfg.params)
    Map params = cfg.params
    int jenkinsMinutes = cfg.timeoutMinutes
    if (cfg.command == 'wait') {
        // the CLI's own limit ends each attempt with Argo CD's last state (exit 1), strictly before Jenkins'
        // timeout, which covers every attempt plus a grace period, would abort it
        Object cliMinutes = params.containsKey('timeout_minutes') ? params.timeout_minutes : cfg.timeoutMinutes
        if (!(cliMinutes instanceof Number) || cliMinutes <= 0) {
            error("mlopsDeploy: params.timeout_minutes must be a number of minutes > 0 (got ${cliMinutes})")
        }
        params = params + [timeout_minutes: cliMinutes]
        jenkinsMinutes = (int) Math.ceil((cfg.retries + 1) * cliMinutes) + cfg.graceMinutes
    }
    List bindings = []
    // wait reads the GitOps branch (which commits contain the pushed one) and may push a revert
    if (cfg.command in ['push', 'wait']) {
        bindings << [type: 'string', credentialsId: cfg.gitopsCredentialsId, variable: 'GITHUB_TOKEN']
    }
    if (cfg.command in ['wait', 'smoke']) {
        bindings << [type: 'file', credentialsId: cfg.kubeconfigCredentialsId, variable: 'KUBECONFIG']
    }
    Map result = [:]
    timeout(time: jenkinsMinutes, unit: 'MINUTES') {
        result = mlopsCredentials(bindings: bindings) {
            mlopsCli(command: "deploy ${cfg.command}", params: params, retries: cfg.retries)
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
