/*
 * Slack notices through `mlops notify ...`. The token is bound only around the call, as the
 * environment variable the CLI reads (SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL). Each option goes only to
 * the command that has it (`notify experiment --name`, `notify failure --message`). A notice that
 * cannot be sent may only warn (failOnError: false), but an abort of the build is never swallowed.
 */

def call(Map config = [:]) {
    Map defaults = [
        command: 'experiment',              // experiment | deployment | failure
        name: null,                         // experiment: Experiment name; null = the latest
        channel: null,                      // Slack channel; null = notify.slack_channel of mlops.yaml
        link: null,                         // URL in the message; null = this build (BUILD_URL)
        message: null,                      // failure: what failed (for example the stage)
        credentialsId: 'mlops-slack',       // secret text with the Slack token; '' = none (recorded in .mlops/notifications.jsonl only)
        credentialsVariable: 'SLACK_BOT_TOKEN',  // SLACK_BOT_TOKEN (bot token) or SLACK_WEBHOOK_URL (incoming webhook)
        failOnError: true,                  // false: a notice that cannot be sent only prints a warning
        params: [:],                        // further options of the command
    ]
    Map cfg = mlopsOptions(step: 'mlopsNotify', defaults: defaults, config: config,
                           choices: [command: ['experiment', 'deployment', 'failure'],
                                     credentialsVariable: ['SLACK_BOT_TOKEN', 'SLACK_WEBHOOK_URL']])
    Map only = [name: 'experiment', message: 'failure']
    Map args = [:]
    for (String key in ['name', 'channel', 'link', 'message']) {
        if (!cfg[key]) {
            continue
        }
        if (only[key] && only[key] != cfg.command) {
            error("mlopsNotify: option '${key}' applies to command '${only[key]}' only (got command '${cfg.command}')")
        }
        args[key] = cfg[key]
    }
    if (cfg.command == 'failure' && !args.message) {
        error("mlopsNotify: command 'failure' needs option 'message'")
    }
    args += cfg.params
    Map result = [:]
    try {
        result = mlopsCredentials(bindings: [[type: 'string', credentialsId: cfg.credentialsId, variable: cfg.credentialsVariable]]) {
            mlopsCli(command: "notify ${cfg.command}", params: args)
        }
    } catch (err) {
        if (cfg.failOnError || mlopsOptions.interruption(err)) {
            throw err
        }
        echo "WARNING: notice not sent: ${err.message}"
        result = [sent: false, error: "${err.message}".toString()]
    }
    return result
}
