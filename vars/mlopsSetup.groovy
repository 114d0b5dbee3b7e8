/*
 * Makes the `mlops` CLI available on the agent and tells mlopsCli where it is (env.MLOPS_BIN):
 * the one on PATH (a prepared agent image), or a cached virtualenv with a pinned version.
 */

def call(Map config = [:]) {
    Map shared = readJSON(text: libraryResource('mlops/defaults.json'), returnPojo: true)
    Map defaults = [
        install: 'auto',       // auto: mlops on PATH if there, else the virtualenv; path: PATH only; venv: always the virtualenv
        version: shared.pyhelpersVersion,  // package version installed into the virtualenv
        packageSpec: null,     // pip requirement to install; null = '<packageName>[<extras>]==<version>'
        venvDir: null,         // virtualenv folder on the agent; null = $HOME/.cache/mlops/venv-<version> (reused by later builds)
        python: 'python3',     // interpreter that creates the virtualenv
    ]
    Map cfg = mlopsOptions(step: 'mlopsSetup', defaults: defaults, config: config,
                           choices: [install: ['auto', 'path', 'venv']])
    if (!(cfg.version ==~ /[0-9A-Za-z.+!-]+/)) {
        error("mlopsSetup: option 'version' must be a package version such as 0.1.0 (got '${cfg.version}')")
    }
    String onPath = ''
    if (cfg.install != 'venv') {
        onPath = sh(label: 'find mlops on PATH', returnStdout: true, script: 'command -v mlops || true').trim()
        if (!onPath && cfg.install == 'path') {
            error("mlopsSetup: install 'path' needs mlops on the agent's PATH; use install: 'auto' or 'venv' to create a virtualenv")
        }
    }
    Map result
    if (onPath) {
        result = [bin: onPath, source: 'path']
    } else {
        String spec = cfg.packageSpec ?: "${shared.packageName}[${shared.packageExtras}]==${cfg.version}"
        List<String> environment = ["MLOPS_VERSION=${cfg.version}", "MLOPS_PACKAGE=${spec}", "MLOPS_PYTHON=${cfg.python}"]
        if (cfg.venvDir) {
            environment << "MLOPS_VENV=${cfg.venvDir}"
        }
        String bin = ''
        withEnv(environment) {
            // A marker file makes an interrupted install start again instead of reusing a broken venv.
            bin = sh(label: 'mlops virtualenv', returnStdout: true, script: '''
                venv="${MLOPS_VENV:-$HOME/.cache/mlops/venv-$MLOPS_VERSION}"
                if [ ! -f "$venv/.mlops-ready" ]; then
                    rm -rf "$venv"
                    "$MLOPS_PYTHON" -m venv "$venv" >&2
                    "$venv/bin/pip" install --quiet "$MLOPS_PACKAGE" >&2
                    touch "$venv/.mlops-ready"
                fi
                echo "$venv/bin/mlops"
            ''').trim()
        }
        List<String> printed = bin.readLines()
        if (!printed) {
            error('mlopsSetup: creating the virtualenv printed no path of mlops')
        }
        result = [bin: printed[-1], source: 'venv']
    }
    env.MLOPS_BIN = result.bin
    echo "mlops: ${result.bin} (${result.source})"
    return result
}
