/*
 * MLflow models through `mlops model ...`: train the best trial, register (which promotes the
 * version to champion only when it beats the current one), promote a version, roll back.
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'train',       // train | register | promote | rollback | champion
        experiment: null,       // train: Experiment (name or experiment.json) whose best trial is trained; null = the latest
        runId: null,            // register: training run; null = the latest `model train` run
        version: null,          // promote: model version to make champion
        credentialsId: '',      // username/password for an MLflow server with basic auth (MLFLOW_TRACKING_USERNAME/PASSWORD); '' = none
        retries: 0,             // extra attempts; register, promote and rollback are idempotent
        timeoutMinutes: 60,     // limit for train
        params: [:],            // further options of the command
    ]
    Map cfg = mlopsOptions(step: 'mlopsModel', defaults: defaults, config: config,
                           choices: [command: ['train', 'register', 'promote', 'rollback', 'champion']])
    if (cfg.command == 'promote' && !cfg.version) {
        error("mlopsModel: command 'promote' needs option 'version'")
    }
    Map args = [:]
    if (cfg.command == 'train' && cfg.experiment) {
        args.experiment = cfg.experiment
    }
    if (cfg.command == 'register' && cfg.runId) {
        args.run_id = cfg.runId
    }
    if (cfg.command == 'promote') {
        args.version = "${cfg.version}".toString()
    }
    args += cfg.params
    Map cli = [command: "model ${cfg.command}", params: args, retries: cfg.retries]
    Map result = [:]
    timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
        result = mlopsCredentials(bindings: [[type: 'usernamePassword', credentialsId: cfg.credentialsId,
                                              usernameVariable: 'MLFLOW_TRACKING_USERNAME', passwordVariable: 'MLFLOW_TRACKING_PASSWORD']]) {
            mlopsCli(cli)
        }
    }
    return result
}
