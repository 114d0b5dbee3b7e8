/*
 * Builds the training image and pushes it, tagged with the data version and the commit, so a
 * Katib trial names exactly the data and code it ran. Builders:
 *   buildkit (default): BuildKit rootless and daemonless (`buildctl-daemonless.sh`, moby/buildkit:<version>-rootless)
 *                       in the 'buildkit' container of the pod template: no Docker daemon, no root;
 *   kaniko:             the maintained kaniko fork (ghcr.io/osscontainertools/kaniko, debug image) in the
 *                       'kaniko' container of resources/mlops/pod-template-kaniko.yaml (upstream kaniko is archived);
 *   docker:             the agent's docker CLI.
 * Registry credentials live only in a DOCKER_CONFIG folder of this build's temporary directory, which is
 * removed when the build step ends: nothing is left in ~/.docker of a static agent.
 */

def call(Map config = [:]) {
    Map shared = readJSON(text: libraryResource('mlops/defaults.json'), returnPojo: true)
    Map defaults = [
        builder: 'buildkit',              // buildkit | kaniko (containers of the pod template) | docker (docker CLI on the agent)
        image: null,                      // repository without tag; null = image.name of mlops.yaml
        dockerfile: null,                 // null = image.dockerfile of mlops.yaml
        context: null,                    // build context folder; null = image.context of mlops.yaml
        dataVersion: null,                // null = `mlops data version`
        commit: null,                     // commit the image is built from; null = `git rev-parse HEAD` of the workspace (pass checkout scm's GIT_COMMIT)
        push: true,                       // false: build only
        credentialsId: 'mlops-registry',  // buildkit, kaniko: secret file with a docker config.json; docker: username/password; '' = none
        container: null,                  // buildkit/kaniko container of the pod template; null = defaults.json buildkitContainer/kanikoContainer
        retries: 1,                       // extra attempts (rebuilding the same tag is safe)
    ]
    Map cfg = mlopsOptions(step: 'mlopsImage', defaults: defaults, config: config,
                           choices: [builder: ['buildkit', 'kaniko', 'docker']])
    Map image = [:]
    if (!cfg.image || !cfg.dockerfile || !cfg.context) {
        image = mlopsCli(command: 'config show').config?.image ?: [:]
    }
    String repository = cfg.image ?: image.name
    String dockerfile = cfg.dockerfile ?: image.dockerfile ?: 'Dockerfile'
    String context = cfg.context ?: image.context ?: '.'
    if (!repository || !(repository ==~ /[a-z0-9]+([._\/:-][a-z0-9]+)*/)) {
        error("mlopsImage: option 'image' must be an image repository such as registry.example.com/ml/train (got '${repository}')")
    }
    String dataVersion = cfg.dataVersion ?: mlopsCli(command: 'data version').data_version
    // never env.GIT_COMMIT: a scripted pipeline does not reliably set it, and it may hold the shared library's commit
    String commit = cfg.commit ?: sh(label: 'commit of the workspace', returnStdout: true, script: 'git rev-parse HEAD').trim()
    if (!commit || !(commit ==~ /[0-9a-f]{7,40}/)) {
        error("mlopsImage: option 'commit' must be a git commit id (got '${commit}'); pass the GIT_COMMIT that checkout scm returns")
    }
    String tag = "${dataVersion}-${commit.take(8)}"
    if (!(tag ==~ /[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/)) {
        error("mlopsImage: data version '${dataVersion}' does not make a valid image tag")
    }
    List<String> refs = ["${repository}:${tag}".toString()]
    // a fresh DOCKER_CONFIG per build in the workspace's temporary folder (shared by the pod's containers)
    String dockerConfig = "${pwd(tmp: true)}/mlops-docker-config-${UUID.randomUUID().toString().take(8)}"
    List<String> environment = ["MLOPS_IMAGE_REFS=${refs.join(' ')}", "MLOPS_DOCKERFILE=${dockerfile}",
                                "MLOPS_CONTEXT=${context}", "MLOPS_PUSH=${cfg.push}", "MLOPS_REGISTRY=${registryOf(repository)}",
                                "DOCKER_CONFIG=${dockerConfig}"]
    String builderContainer = cfg.container ?: (cfg.builder == 'kaniko' ? shared.kanikoContainer : shared.buildkitContainer)
    try {
        withEnv(environment) {
            retry(cfg.retries + 1) {
                if (cfg.builder == 'docker') {
                    withRegistry(cfg) {
                        dockerBuild()
                    }
                } else {
                    container(builderContainer) {
                        withRegistry(cfg) {
                            if (cfg.builder == 'buildkit') {
                                buildkitBuild()
                            } else {
                                kanikoBuild()
                            }
                        }
                    }
                }
            }
        }
    } finally {
        dir(dockerConfig) {
            deleteDir()
        }
    }
    return [image: repository, tag: tag, refs: refs, pushed: cfg.push, dataVersion: dataVersion, commit: commit, builder: cfg.builder]
}

/** BuildKit without a daemon (flags from moby/buildkit's README and examples/kubernetes/job.rootless.yaml). */
def buildkitBuild() {
    sh(label: 'buildkit build', script: '''
        set +x
        mkdir -p "$DOCKER_CONFIG"
        if [ -n "${DOCKER_CONFIG_JSON:-}" ]; then cp "$DOCKER_CONFIG_JSON" "$DOCKER_CONFIG/config.json"; fi
        set -x
        names=$(printf '%s' "$MLOPS_IMAGE_REFS" | tr ' ' ',')
        buildctl-daemonless.sh build --frontend dockerfile.v0 \\
            --local context="$MLOPS_CONTEXT" \\
            --local dockerfile="$(dirname "$MLOPS_DOCKERFILE")" --opt filename="$(basename "$MLOPS_DOCKERFILE")" \\
            --output "type=image,\\"name=$names\\",push=$MLOPS_PUSH"
    ''')
}

/** kaniko reads registry credentials from $DOCKER_CONFIG/config.json. */
def kanikoBuild() {
    sh(label: 'kaniko build', script: '''
        set +x
        mkdir -p "$DOCKER_CONFIG"
        if [ -n "${DOCKER_CONFIG_JSON:-}" ]; then cp "$DOCKER_CONFIG_JSON" "$DOCKER_CONFIG/config.json"; fi
        set -x
        for ref in $MLOPS_IMAGE_REFS; do set -- "$@" --destination "$ref"; done
        if [ "$MLOPS_PUSH" != true ]; then set -- "$@" --no-push; fi
        /kaniko/executor --context "dir://$MLOPS_CONTEXT" --dockerfile "$MLOPS_DOCKERFILE" "$@"
    ''')
}

/** `docker login` writes to $DOCKER_CONFIG, this build's own folder, never ~/.docker. */
def dockerBuild() {
    sh(label: 'docker build', script: '''
        set +x
        mkdir -p "$DOCKER_CONFIG"
        if [ -n "${REGISTRY_USER:-}" ]; then
            printf '%s' "$REGISTRY_PASSWORD" | docker login --username "$REGISTRY_USER" --password-stdin "$MLOPS_REGISTRY"
        fi
        set -x
        for ref in $MLOPS_IMAGE_REFS; do set -- "$@" --tag "$ref"; done
        docker build --file "$MLOPS_DOCKERFILE" "$@" "$MLOPS_CONTEXT"
        if [ "$MLOPS_PUSH" = true ]; then for ref in $MLOPS_IMAGE_REFS; do docker push "$ref"; done; fi
    ''')
}

def withRegistry(Map cfg, Closure body) {
    List bindings = cfg.builder == 'docker' ?
        [[type: 'usernamePassword', credentialsId: cfg.credentialsId, usernameVariable: 'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD']] :
        [[type: 'file', credentialsId: cfg.credentialsId, variable: 'DOCKER_CONFIG_JSON']]
    return mlopsCredentials(bindings: bindings) {
        body()
    }
}

/** 'registry.example.com/ml/train' -> 'registry.example.com'; Docker Hub names -> ''. */
@NonCPS
String registryOf(String repository) {
    String first = repository.tokenize('/')[0]
    return (repository.contains('/') && (first.contains('.') || first.contains(':') || first == 'localhost')) ? first : ''
}
