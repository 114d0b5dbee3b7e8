package harness

/**
 * Records a Job DSL script: every method call becomes a node (name, arguments, children from its
 * closure). Tests then assert on the tree, e.g. node.find('branchSources/branchSource/source/github').
 */
class DslNode {

    final String name
    final List args
    final List<DslNode> children = []

    DslNode(String name, List args) {
        this.name = name
        this.args = args
    }

    def methodMissing(String method, Object rawArgs) {
        List args = (rawArgs as List)
        DslNode child = new DslNode(method, args.findAll { !(it instanceof Closure) })
        children << child
        Closure body = (Closure) args.find { it instanceof Closure }
        if (body != null) {
            Closure copy = (Closure) body.clone()
            copy.resolveStrategy = Closure.DELEGATE_FIRST
            copy.delegate = child
            copy.call()
        }
        return child
    }

    /** Children by name (all of them). */
    List<DslNode> all(String childName) { children.findAll { it.name == childName } }

    /** The first node along a path of child names, or null. */
    DslNode find(String path) {
        DslNode node = this
        for (String part : path.tokenize('/')) {
            node = node?.children?.find { it.name == part }
        }
        return node
    }

    /** The first argument of the node at path: find('x/y').args[0]. */
    Object value(String path) { find(path)?.args?.getAt(0) }

    /** A top-level item by its DSL method and full name, e.g. item('pipelineJob', 'taxi-fare/deploy'). */
    DslNode item(String method, String fullName) { children.find { it.name == method && it.args[0] == fullName } }
}
