/*
 * Opens (or updates, when one is already open for the branch) the pull request that brings a
 * branch's new data to the main branch, through `mlops pr open` with GITHUB_TOKEN bound around it.
 * In a pull-request build (BRANCH_NAME 'PR-N', CHANGE_ID set) the branch is CHANGE_BRANCH and the base
 * CHANGE_TARGET: the pull request already exists and is updated, never opened from 'PR-N'.
 */

def call(Map config = [:]) {
    Map defaults = [
        branch: null,                          // branch with the new data (`pr open --branch`); null = CHANGE_BRANCH in a pull-request build, else BRANCH_NAME
        base: null,                            // branch the pull request targets; null = CHANGE_TARGET in a pull-request build, else github.base of mlops.yaml
        title: null,                           // null = a title naming the data version (made by mlops)
        since: null,                           // git revision the data diff starts from; null = the merge base with base
        experiment: null,                      // Experiment whose report goes in the description; null = the one of this data version, if any
        credentialsId: 'mlops-github-token',   // secret text with a GitHub token (GITHUB_TOKEN)
        retries: 1,                            // extra attempts: opening is idempotent (an open pull request is updated)
        params: [:],                           // further options of `mlops pr open`
    ]
    Map cfg = mlopsOptions(step: 'mlopsPullRequest', defaults: defaults, config: config, required: ['credentialsId'])
    boolean pullRequestBuild = env.CHANGE_ID as boolean
    String branch = cfg.branch ?: (pullRequestBuild ? env.CHANGE_BRANCH : env.BRANCH_NAME)
    String base = cfg.base ?: (pullRequestBuild ? env.CHANGE_TARGET : null)
    if (!branch) {
        error("mlopsPullRequest: option 'branch' is required outside a multibranch build (env.BRANCH_NAME is not set)")
    }
    if (branch ==~ /PR-\d+/) {
        error("mlopsPullRequest: branch '${branch}' is Jenkins' name of a pull request, not a git branch; set option 'branch' (CHANGE_BRANCH is not set)")
    }
    if (branch == base) {
        error("mlopsPullRequest: option 'branch' must differ from 'base' (both '${branch}')")
    }
    Map args = [branch: branch]
    if (base) {
        args.base = base
    }
    for (String key in ['title', 'since', 'experiment']) {
        if (cfg[key]) {
            args[key] = cfg[key]
        }
    }
    args += cfg.params
    return mlopsCredentials(bindings: [[type: 'string', credentialsId: cfg.credentialsId, variable: 'GITHUB_TOKEN']]) {
        mlopsCli(command: 'pr open', params: args, retries: cfg.retries)
    }
}
