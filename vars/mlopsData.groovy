/*
 * DVC-tracked data through `mlops data <command>`. Storage credentials are bound only around
 * push and pull, the commands that reach the remote.
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'status',                // status | diff | version | push | pull
        credentialsId: 'mlops-dvc-s3',    // username/password = AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for push/pull; '' = none (local remote)
        retries: 2,                       // extra attempts of push/pull (DVC transfers only what is missing, so repeating is safe)
        params: [:],                      // options of `mlops data <command>`, e.g. [rev: 'HEAD~1'] for version
    ]
    Map cfg = mlopsOptions(step: 'mlopsData', defaults: defaults, config: config,
                           choices: [command: ['status', 'diff', 'version', 'push', 'pull']])
    Map cli = [command: "data ${cfg.command}", params: cfg.params]
    if (!(cfg.command in ['push', 'pull'])) {
        return mlopsCli(cli)
    }
    cli.retries = cfg.retries
    if (!cfg.credentialsId) {
        return mlopsCli(cli)
    }
    return mlopsCredentials(bindings: [[type: 'usernamePassword', credentialsId: cfg.credentialsId,
                                        usernameVariable: 'AWS_ACCESS_KEY_ID', passwordVariable: 'AWS_SECRET_ACCESS_KEY']]) {
        mlopsCli(cli)
    }
}
