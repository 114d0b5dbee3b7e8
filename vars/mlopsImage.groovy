/*
 * Builds the training image and pushes it, tagged with the data version and the commit, so a
 * Katib trial names exactly the data and code it ran. kaniko runs in the 'kaniko' container of
 * the pod template (no Docker daemon needed); 'docker' uses the agent's Docker.
 */

def call(Map config = [:]) {
    Map defaults = [
        builder: 'kaniko',                // kaniko (container of the pod template) | docker (docker CLI on the agent)
        image: null,                      // repository without tag; null = image.name of mlops.yaml
        dockerfile: null,                 // null = image.dockerfile of mlops.yaml
        context: null,                    // build context folder; null = image.context of mlops.yaml
        dataVersion: null,                // null = `mlops data version`
        commit: null,                     // null = env.GIT_COMMIT
        push: true,                       // false: build only
        credentialsId: 'mlops-registry',  // kaniko: secret file with a docker config.json; docker: username/password; '' = none
        container: 'kaniko',              // kaniko's container name in the pod template
        retries: 1,                       // extra attempts (rebuilding the same tag is safe)
    ]
    Map cfg = mlopsOptions(step: 'mlopsImage', defaults: defaults, config: config,
                           choices: [builder: ['kaniko', 'docker']])
    Map image = [:]
    if (!cfg.image || !cfg.dockerfile || !cfg.context) {
        image = mlopsCli(command: 'config show').config?.image ?: [:]
    }
    String repository = cfg.image ?: image.name
    String dockerfile = cfg.dockerfile ?: image.dockerfile ?: 'Dockerfile'
    String context = cfg.context ?: image.context ?: '.'
    String dataVersion = cfg.dataVersion ?: mlopsCli(command: 'data version').data_version
    String commit = cfg.commit ?: env.GIT_COMMIT
    if (!repository || !(repository ==~ /[a-z0-9]+([._\/:-][a-z0-9]+)*/)) {
        error("mlopsImage: option 'image' must be an image repository such as registry.example.com/ml/train (got '${repository}')")
    }
    if (!commit || !(commit ==~ /[0-9a-f]{7,40}/)) {
        error("mlopsImage: option 'commit' must be a git commit id (got '${commit}'); set it or run after checkout scm")
    }
    String tag = "${dataVersion}-${commit.take(8)}"
    if (!(tag ==~ /[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/)) {
        error("mlopsImage: data version '${dataVersion}' does not make a valid image tag")
    }
    List<String> refs = ["${repository}:${tag}".toString()]
    List<String> environment = ["MLOPS_IMAGE_REFS=${refs.join(' ')}", "MLOPS_DOCKERFILE=${dockerfile}",
                                "MLOPS_CONTEXT=${context}", "MLOPS_PUSH=${cfg.push}", "MLOPS_REGISTRY=${registryOf(repository)}"]
    withEnv(environment) {
        retry(cfg.retries + 1) {
            if (cfg.builder == 'kaniko') {
                container(cfg.container) {
                    withRegistry(cfg) {
                        sh(label: 'kaniko build', script: '''
                            set +x
                            mkdir -p /kaniko/.docker
                            if [ -n "${DOCKER_CONFIG_JSON:-}" ]; then cp "$DOCKER_CONFIG_JSON" /kaniko/.docker/config.json; fi
                            set -x
                            for ref in $MLOPS_IMAGE_REFS; do set -- "$@" --destination "$ref"; done
                            if [ "$MLOPS_PUSH" != true ]; then set -- "$@" --no-push; fi
                            /kaniko/executor --context "dir://$MLOPS_CONTEXT" --dockerfile "$MLOPS_DOCKERFILE" "$@"
                        ''')
                    }
                }
            } else {
                withRegistry(cfg) {
                    sh(label: 'docker build', script: '''
                        set +x
                        if [ -n "${REGISTRY_USER:-}" ]; then
                            printf '%s' "$REGISTRY_PASSWORD" | docker login --username "$REGISTRY_USER" --password-stdin "$MLOPS_REGISTRY"
                        fi
                        set -x
                        for ref in $MLOPS_IMAGE_REFS; do set -- "$@" --tag "$ref"; done
                        docker build --file "$MLOPS_DOCKERFILE" "$@" "$MLOPS_CONTEXT"
                        if [ "$MLOPS_PUSH" = true ]; then for ref in $MLOPS_IMAGE_REFS; do docker push "$ref"; done; fi
                    ''')
                }
            }
        }
    }
    return [image: repository, tag: tag, refs: refs, pushed: cfg.push, dataVersion: dataVersion]
}

def withRegistry(Map cfg, Closure body) {
    if (!cfg.credentialsId) {
        return body()
    }
    List bindings = cfg.builder == 'kaniko' ?
        [file(credentialsId: cfg.credentialsId, variable: 'DOCKER_CONFIG_JSON')] :
        [usernamePassword(credentialsId: cfg.credentialsId, usernameVariable: 'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD')]
    withCredentials(bindings) {
        body()
    }
}

/** 'registry.example.com/ml/train' -> 'registry.example.com'; Docker Hub names -> ''. */
@NonCPS
String registryOf(String repository) {
    String first = repository.tokenize('/')[0]
    return (repository.contains('/') && (first.contains('.') || first.contains(':') || first == 'localhost')) ? first : ''
}
