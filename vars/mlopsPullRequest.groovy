/*
 * Opens (or updates, when one is already open for the branch) the pull request that brings a
 * branch's new data to the main branch, through `mlops pr open` with GITHUB_TOKEN bound around it.
 */

def call(Map config = [:]) {
    Map defaults = [
        head: null,                            // branch with the new data; null = env.BRANCH_NAME
        base: 'main',                          // branch the pull request targets
        title: null,                           // null = a title naming the data version (made by mlops)
        body: null,                            // extra text for the description (data diff and image are added by mlops)
        credentialsId: 'mlops-github-token',   // secret text with a GitHub token (GITHUB_TOKEN)
        retries: 1,                            // extra attempts: opening is idempotent (an open pull request is updated)
        params: [:],                           // further options of `mlops pr open`
    ]
    Map cfg = mlopsOptions(step: 'mlopsPullRequest', defaults: defaults, config: config, required: ['base', 'credentialsId'])
    String head = cfg.head ?: env.BRANCH_NAME
    if (!head) {
        error("mlopsPullRequest: option 'head' is required outside a multibranch build (env.BRANCH_NAME is not set)")
    }
    if (head == cfg.base) {
        error("mlopsPullRequest: option 'head' must differ from 'base' (both '${head}')")
    }
    Map args = [head: head, base: cfg.base]
    if (cfg.title) {
        args.title = cfg.title
    }
    if (cfg.body) {
        args.body = cfg.body
    }
    args += cfg.params
    Map result = [:]
    withCredentials([string(credentialsId: cfg.credentialsId, variable: 'GITHUB_TOKEN')]) {
        result = mlopsCli(command: 'pr open', params: args, retries: cfg.retries)
    }
    return result
}
