/*
 * Binds Jenkins credentials around a block as the environment variables the CLI reads, and names the
 * secret ones in MLOPS_SECRET_VARS (names only, never values) so that mlopsCli masks their values in
 * everything the CLI prints before it becomes an error message, a log line or a Slack notice.
 * Jenkins masks bound secrets only in its console: the text of an error raised inside withCredentials,
 * or a message handed to another system, is not masked.
 */

def call(Map config = [:], Closure body) {
    Map defaults = [
        bindings: [],   // [[type: 'string' | 'usernamePassword' | 'file', credentialsId: ..., variable: ... (string, file) |
                        //   usernameVariable: ..., passwordVariable: ... (usernamePassword)], ...]; an empty credentialsId is left out
    ]
    Map cfg = mlopsOptions(step: 'mlopsCredentials', defaults: defaults, config: config)
    List bindings = []
    List<String> secretVars = (env.MLOPS_SECRET_VARS ?: '').tokenize(' ')
    for (Map b in cfg.bindings) {
        if (!b.credentialsId) {
            continue
        }
        if (b.type == 'string') {
            bindings << string(credentialsId: b.credentialsId, variable: b.variable)
            secretVars << b.variable
        } else if (b.type == 'usernamePassword') {
            bindings << usernamePassword(credentialsId: b.credentialsId, usernameVariable: b.usernameVariable,
                                         passwordVariable: b.passwordVariable)
            secretVars << b.usernameVariable << b.passwordVariable
        } else if (b.type == 'file') {
            // the variable holds a path; the file's content never passes through the CLI's output
            bindings << file(credentialsId: b.credentialsId, variable: b.variable)
        } else {
            error("mlopsCredentials: binding type must be one of string, usernamePassword, file (got '${b.type}')")
        }
    }
    if (!bindings) {
        return body()
    }
    def result = null
    withCredentials(bindings) {
        withEnv(["MLOPS_SECRET_VARS=${secretVars.unique().join(' ')}"]) {
            result = body()
        }
    }
    return result
}
