/*
 * The one place that runs the `mlops` CLI. Option values go to the CLI as a JSON file named by
 * MLOPS_PARAMS_FILE (never on the command line), the script is a fixed single-quoted string, and
 * the result is the command's --json document.
 *
 * The parameter file is written with JsonOutput, not writeJSON: writeJSON's json-lib turns a GString
 * nested in a Map into a bean ({"valueCount": 1, "strings": [...], ...}) that the CLI would take as text.
 * What the CLI prints on stderr passes through a filter that masks the values of the variables named in
 * MLOPS_SECRET_VARS (set by mlopsCredentials) before it reaches the log file that error messages and Slack
 * notices are made from: Jenkins masks only its console, not the text of an error.
 */
import groovy.json.JsonOutput

def call(Map config = [:]) {
    Map defaults = [
        command: null,        // required: the command words, e.g. 'data status' or 'line data'
        params: [:],          // option values of the command (keys = option names with '_')
        configFile: null,     // mlops.yaml to use (MLOPS_CONFIG); null = found from the current directory
        profile: null,        // configuration profile (MLOPS_PROFILE); null = the file's default
        retries: 0,           // extra attempts when mlops exits 1; only for commands that are safe to repeat
        failOnError: true,    // false: exit 1 returns the result plus mlopsExitCode/mlopsError instead of failing
        label: null,          // label of the sh step in the build log; null = 'mlops <command>'
    ]
    Map cfg = mlopsOptions(step: 'mlopsCli', defaults: defaults, config: config, required: ['command'])
    List<String> words = commandWords(cfg.command)
    if (!words) {
        error("mlopsCli: option 'command' must be one to three lowercase words such as 'data status' (got '${cfg.command}'); values go in 'params'")
    }
    String command = words.join(' ')
    String base = "${pwd(tmp: true)}/mlops-${words.join('-')}-${UUID.randomUUID().toString().take(8)}"
    writeFile(file: "${base}-params.json", text: JsonOutput.toJson(cfg.params), encoding: 'UTF-8')
    List<String> environment = [
        "MLOPS_BIN=${env.MLOPS_BIN ?: 'mlops'}",
        "MLOPS_COMMAND=${command}",
        "MLOPS_PARAMS_FILE=${base}-params.json",
        "MLOPS_RESULT=${base}-result.json",
        "MLOPS_LOG=${base}-stderr.log",
    ]
    if (cfg.configFile) {
        environment << "MLOPS_CONFIG=${cfg.configFile}"
    }
    if (cfg.profile) {
        environment << "MLOPS_PROFILE=${cfg.profile}"
    }

    int status = 0
    String message = ''
    withEnv(environment) {
        // `retry` repeats only failed operations (exit 1): bad input (exit 2) leaves the block and fails below.
        retry(cfg.retries + 1) {
            // stdout (the JSON) goes to MLOPS_RESULT; stderr, with bound secrets masked, is shown live and kept
            // for the error message. awk's index/substr replace the values literally (no regex, no escaping).
            status = sh(label: cfg.label ?: "mlops ${command}", returnStatus: true, script: '''
                set +ex
                { "$MLOPS_BIN" $MLOPS_COMMAND --json 2>&1 >"$MLOPS_RESULT"; echo $? >"$MLOPS_RESULT.rc"; } | awk '
                    BEGIN { n = split(ENVIRON["MLOPS_SECRET_VARS"], names, " ") }
                    {
                        for (i = 1; i <= n; i++) {
                            secret = ENVIRON[names[i]]
                            if (length(secret) < 4) continue
                            rest = $0; out = ""
                            while ((p = index(rest, secret)) > 0) { out = out substr(rest, 1, p - 1) "****"; rest = substr(rest, p + length(secret)) }
                            $0 = out rest
                        }
                        print; fflush()
                    }' | tee "$MLOPS_LOG"
                exit "$(cat "$MLOPS_RESULT.rc" 2>/dev/null || echo 127)"
            ''')
            String stderr = fileExists("${base}-stderr.log") ? readFile(file: "${base}-stderr.log") : ''
            message = status ? errorMessage(stderr, status) : ''
            if (status == 1 && cfg.failOnError) {
                error("mlops ${command} failed: ${message}")
            }
        }
    }
    if (status == 2) {
        error("mlops ${command}: bad input: ${message}")
    }
    if (status != 0 && status != 1) {
        error("mlops ${command} exited with code ${status}: ${message}")
    }
    String text = fileExists("${base}-result.json") ? readFile(file: "${base}-result.json").trim() : ''
    if (!text && status == 0) {
        error("mlops ${command} printed no JSON result")
    }
    Map result = text ? readJSON(text: text, returnPojo: true) : [:]
    if (status == 1) {
        result.mlopsExitCode = 1
        result.mlopsError = message
    }
    return result
}

/** 'data status' -> ['data', 'status']; null when it is not a plain command. */
@NonCPS
List<String> commandWords(String command) {
    List<String> words = command.tokenize(' ')
    boolean plain = words.size() in 1..3 && words.every { it ==~ /[a-z][a-z0-9-]*/ }
    return plain ? words : null
}

/** The CLI's own one-line error ("mlops: error: ..."), else the last line it printed. */
@NonCPS
String errorMessage(String stderr, int status) {
    List<String> lines = stderr.readLines()*.trim().findAll { it }
    String line = lines.reverse().find { it.startsWith('mlops: error:') }
    if (line) {
        return line.substring('mlops: error:'.length()).trim()
    }
    return lines ? lines[-1] : "exit code ${status} and no message".toString()
}
