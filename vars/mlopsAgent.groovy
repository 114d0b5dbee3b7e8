/*
 * Where the lines run: an agent chosen by label, a Kubernetes pod built from the library's pod
 * template (python container with the helpers, BuildKit container for images), or the current node.
 */

def call(Map config = [:], Closure body) {
    Map defaults = [
        agent: 'node',       // node | kubernetes | none (already inside a node block)
        label: '',           // node: agent label; '' = any agent
        podTemplate: null,   // kubernetes: library resource with the pod YAML; null = defaults.json podTemplate
        container: null,     // kubernetes: container the body runs in; null = defaults.json pythonContainer
    ]
    Map cfg = mlopsOptions(step: 'mlopsAgent', defaults: defaults, config: config,
                           choices: [agent: ['node', 'kubernetes', 'none']])
    if (cfg.agent == 'none') {
        return body()
    }
    if (cfg.agent == 'node') {
        if (cfg.label) {
            return node(cfg.label) { body() }
        }
        return node { body() }
    }
    Map shared = readJSON(text: libraryResource('mlops/defaults.json'), returnPojo: true)
    String yaml = libraryResource(cfg.podTemplate ?: shared.podTemplate)
    def result = null
    podTemplate(yaml: yaml) {
        node(env.POD_LABEL) {
            container(cfg.container ?: shared.pythonContainer) {
                result = body()
            }
        }
    }
    return result
}
