/*
 * Slack notices through `mlops notify ...`. The token is bound only around the call, as the
 * environment variable the CLI reads (SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL).
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
    Map args = [:]
    ['name', 'channel', 'link', 'message'].each { String key ->
        if (cfg[key]) {
            args[key] = cfg[key]
        }
    }
    args += cfg.params
    Map result = [:]
    try {
        if (cfg.credentialsId) {
            withCredentials([string(credentialsId: cfg.credentialsId, variable: cfg.credentialsVariable)]) {
                result = mlopsCli(command: "notify ${cfg.command}", params: args)
            }
        } else {
            result = mlopsCli(command: "notify ${cfg.command}", params: args)
        }
    } catch (err) {
        if (cfg.failOnError) {
            throw err
        }
        echo "WARNING: notice not sent: ${err.message}"
        result = [sent: false, error: "${err.message}".toString()]
    }
    return result
}
