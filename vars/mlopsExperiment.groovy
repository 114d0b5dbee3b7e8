/*
 * Katib Experiments through `mlops experiment ...`: run with the local engine on the agent, or
 * submit to Katib, wait for it and read the best trial (mode 'cluster').
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'run',          // validate | run | submit | wait | best | delete | logs (params: [trial: ...]); 'run' on a cluster = submit + wait + best
        mode: 'local',           // local: Optuna engine on this agent; cluster: Katib through the Kubernetes API
        file: null,              // Experiment spec; null = experiment.file of mlops.yaml (validate needs it)
        name: null,              // Experiment name; null = metadata.name of the spec (needed by wait, best, delete)
        timeoutMinutes: 180,     // the CLI's own limit of one wait (timeout_minutes); local run: the limit of the run
        graceMinutes: 5,         // Jenkins' timeout = every attempt's CLI limit + this, so the CLI ends first with a clean exit 1
        kubeconfigCredentialsId: 'mlops-kubeconfig',  // cluster: secret file bound as KUBECONFIG; '' = the agent's service account
        params: [:],             // further options of the command
    ]
    Map cfg = mlopsOptions(step: 'mlopsExperiment', defaults: defaults, config: config,
                           choices: [command: ['validate', 'run', 'submit', 'wait', 'best', 'delete', 'logs'],
                                     mode: ['local', 'cluster']])
    if (cfg.command == 'validate' && !cfg.file) {
        error("mlopsExperiment: command 'validate' needs option 'file' (the Experiment spec)")
    }
    if (cfg.command in ['wait', 'best', 'delete'] && !cfg.name) {
        error("mlopsExperiment: command '${cfg.command}' needs option 'name'")
    }
    if (cfg.command == 'logs' && !cfg.params.trial) {
        error("mlopsExperiment: command 'logs' needs params.trial (the trial's name)")
    }
    if (cfg.mode == 'local' && !(cfg.command in ['validate', 'run'])) {
        error("mlopsExperiment: command '${cfg.command}' needs mode 'cluster'; mode 'local' offers validate, run")
    }
    Map args = [:]
    if (cfg.file && cfg.command != 'logs') {
        args.file = cfg.file
    }
    if (cfg.name && !(cfg.command in ['validate', 'logs'])) {
        args.name = cfg.name
    }
    args += cfg.params
    if (cfg.command == 'validate') {
        return mlopsCli(command: 'experiment validate', params: args)
    }
    if (cfg.mode == 'local') {
        Map doc = [:]
        timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
            doc = mlopsCli(command: 'experiment run', params: args + [local: true])
        }
        return doc
    }
    return withKubeconfig(cfg.kubeconfigCredentialsId) {
        if (cfg.command != 'run') {
            return cfg.command == 'wait' ? waitFor(cfg, args) : mlopsCli(command: "experiment ${cfg.command}", params: args)
        }
        Map submitted = mlopsCli(command: 'experiment submit', params: args)
        Map named = [name: submitted.metadata?.name ?: cfg.name]
        Map doc = waitFor(cfg, named)
        doc.best = mlopsCli(command: 'experiment best', params: named)
        return doc
    }
}

Map waitFor(Map cfg, Map params) {
    Map doc = [:]
    int retries = 2
    // waiting only reads the Experiment's status, so a dropped connection is retried; the CLI's own limit
    // ends each attempt cleanly (exit 1, Katib's last state) strictly before Jenkins' timeout aborts the stage
    timeout(time: (retries + 1) * cfg.timeoutMinutes + cfg.graceMinutes, unit: 'MINUTES') {
        doc = mlopsCli(command: 'experiment wait', params: params + [timeout_minutes: cfg.timeoutMinutes], retries: retries)
    }
    return doc
}

def withKubeconfig(String credentialsId, Closure body) {
    return mlopsCredentials(bindings: [[type: 'file', credentialsId: credentialsId, variable: 'KUBECONFIG']]) {
        body()
    }
}
