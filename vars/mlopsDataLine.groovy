/*
 * Line 1, new data -> Experiment. The multibranch job runs it on every branch and pull request:
 *   a branch (or pull request) whose data changed: push the data, build the training image, open/update
 *   the pull request;
 *   the main branch (after the merge): run the Experiment for the new data version (`mlops line data`:
 *   push, Experiment, Slack notice, data marked processed), under a lock per data version so that two
 *   merges of the same data never run two Experiments, and start the deploy line.
 * Jenkins realities it follows: the commit comes from what `checkout scm` returns (env.GIT_COMMIT is not
 * reliable in a scripted pipeline); a pull-request build runs as 'PR-N' with CHANGE_BRANCH/CHANGE_TARGET,
 * and a checkout merged with its target is a commit that exists only on this agent; an abort is not a
 * failure; skipped stages are marked skipped (pipeline-model-definition's Utils, when installed).
 * A failure sends a Slack notice naming the stage. Local mode runs everything on the agent.
 */

def call(Map config = [:]) {
    Map defaults = [
        mode: 'local',                  // local: state in .mlops/ of the workspace, no image, no pull request; cluster: S3, BuildKit, GitHub, Katib
        mainBranch: 'main',             // branch whose builds run the Experiment; other branches and pull requests prepare a pull request
        agent: 'node',                  // node: an agent (agentLabel); kubernetes: pod from podTemplate; none: the current node
        agentLabel: '',                 // node label for agent 'node'; '' = any agent
        podTemplate: null,              // agent 'kubernetes': library resource with the pod YAML; null = resources/mlops/pod-template.yaml
        checkout: true,                 // run `checkout scm` first (its GIT_COMMIT tags the image)
        install: 'auto',                // how mlopsSetup finds mlops: auto | path | venv
        configFile: null,               // mlops.yaml (MLOPS_CONFIG); null = found in the workspace
        profile: null,                  // configuration profile (MLOPS_PROFILE); null = the file's default
        force: false,                   // run the Experiment even when this data version was processed
        baseRevision: null,             // branches: compare the data with this revision (e.g. 'origin/main', which the
                                        // checkout must fetch); null = the workspace's processed marker
        deployJob: '../deploy',         // job started after a completed Experiment on the main branch; '' = none
        experimentTimeoutMinutes: 240,  // limit of the Experiment stage
        lockResource: null,             // lockable-resources lock held around the Experiment; null = 'mlops-data <job folder> <data version>'; '' = no lock
        imageBuilder: 'buildkit',       // cluster mode: buildkit | kaniko | docker (see mlopsImage)
        dataCredentialsId: 'mlops-dvc-s3',           // username/password: S3 keys of the DVC remote
        registryCredentialsId: 'mlops-registry',     // buildkit, kaniko: docker config.json file; docker: username/password
        githubCredentialsId: 'mlops-github-token',   // secret text: GitHub token for the pull request
        slackCredentialsId: 'mlops-slack',           // secret text: Slack bot token
        kubeconfigCredentialsId: 'mlops-kubeconfig', // secret file: kubeconfig for Katib (cluster mode)
    ]
    Map cfg = mlopsOptions(step: 'mlopsDataLine', defaults: defaults, config: config,
                           choices: [mode: ['local', 'cluster'], agent: ['node', 'kubernetes', 'none'],
                                     install: ['auto', 'path', 'venv'], imageBuilder: ['buildkit', 'kaniko', 'docker']])
    // Local mode binds only the credentials the Jenkinsfile names, so a bare Jenkins can run it.
    Map creds = [:]
    defaults.keySet().findAll { it.endsWith('CredentialsId') }.each { String key ->
        creds[key] = (cfg.mode == 'cluster' || config.containsKey(key)) ? cfg[key] : ''
    }
    // a pull-request build runs as 'PR-N': its branch is CHANGE_BRANCH, its target CHANGE_TARGET
    boolean pullRequestBuild = env.CHANGE_ID as boolean
    String branch = pullRequestBuild ? env.CHANGE_BRANCH : (env.BRANCH_NAME ?: cfg.mainBranch)  // a plain pipeline job counts as the main branch
    String target = pullRequestBuild ? (env.CHANGE_TARGET ?: cfg.mainBranch) : cfg.mainBranch
    boolean onMain = !pullRequestBuild && branch == cfg.mainBranch
    boolean cluster = cfg.mode == 'cluster'
    Map state = [stage: '', changed: false, dataVersion: null, commit: null, localCommit: false, line: null, image: null,
                 pullRequest: null, skipped: [:]]

    mlopsAgent(agent: cfg.agent, label: cfg.agentLabel, podTemplate: cfg.podTemplate) {
        withEnv(mlopsEnvironment(cfg)) {
            try {
                mlopsStage(name: 'Checkout', when: cfg.checkout, skipReason: 'checkout disabled', state: state) {
                    Map scmVars = checkout(scm)
                    state.commit = scmVars?.GIT_COMMIT
                    if (pullRequestBuild && state.commit) {
                        state.localCommit = !onRemote(state.commit)
                    }
                }
                mlopsStage(name: 'Setup', state: state) {
                    mlopsSetup(install: cfg.install)
                    mlopsCli(command: 'config validate')
                }
                mlopsStage(name: 'Data status', state: state) {
                    boolean againstBase = !onMain && cfg.baseRevision
                    Map status = mlopsData(command: 'status', params: againstBase ? [base: cfg.baseRevision] : [:])
                    state.dataVersion = status.data_version
                    state.changed = (againstBase ? status.changed_from_base as boolean : status.changed as boolean) || cfg.force
                    echo "data ${status.data_version}: ${state.changed ? 'new, to be processed' : 'already processed'}"
                }
                boolean branchWork = !onMain && state.changed
                mlopsStage(name: 'Push data', when: branchWork, skipReason: onMain ? 'main branch' : 'no new data', state: state) {
                    mlopsData(command: 'push', credentialsId: creds.dataCredentialsId)
                }
                // a pull request merged with its target is checked out as Jenkins' own merge commit: an image tagged
                // with it names code that exists nowhere else, so the branch-only stages wait for a head build
                String merged = 'the checkout is Jenkins\' merge of the pull request with its target, a commit only this agent has' +
                                ' (discover pull requests with their head revision, as jobs/mlopsJobs.groovy does)'
                String branchSkip = !cluster ? 'local mode' : (!branchWork ? (onMain ? 'main branch' : 'no new data') : merged)
                boolean publish = branchWork && cluster && !state.localCommit
                // main: the trials run the image of the merged commit (a merge commit is code no branch build tagged)
                boolean mainImage = onMain && state.changed && cluster && state.commit
                mlopsStage(name: 'Training image', when: publish || mainImage,
                           skipReason: onMain ? 'data already processed' : branchSkip, state: state) {
                    state.image = mlopsImage(builder: cfg.imageBuilder, dataVersion: state.dataVersion, commit: state.commit,
                                             credentialsId: creds.registryCredentialsId)
                }
                mlopsStage(name: 'Pull request', when: publish, skipReason: branchSkip, state: state) {
                    // in a PR-N build the pull request exists: `pr open` updates it (branch CHANGE_BRANCH, base CHANGE_TARGET)
                    state.pullRequest = mlopsPullRequest(branch: branch, base: target, credentialsId: creds.githubCredentialsId)
                }
                String experimentSkip = onMain ? 'data already processed' : (pullRequestBuild ? 'pull-request build' : 'not the main branch')
                mlopsStage(name: 'Experiment', when: onMain && state.changed, skipReason: experimentSkip, state: state) {
                    timeout(time: cfg.experimentTimeoutMinutes, unit: 'MINUTES') {
                        withLock(lockName(cfg, state.dataVersion)) {
                            withLineCredentials(creds) {
                                Map lineParams = [local: !cluster, force: cfg.force]
                                if (state.image) {
                                    lineParams.image = state.image.refs[0]   // what the trials run (docs/cluster.md)
                                }
                                state.line = mlopsCli(command: 'line data', params: lineParams)
                            }
                        }
                    }
                }
                boolean handOver = state.line?.status == 'completed' && cfg.deployJob
                mlopsStage(name: 'Deploy line', when: handOver,
                           skipReason: cfg.deployJob ? 'no completed Experiment' : 'no deployJob', state: state) {
                    build(job: cfg.deployJob, wait: false, parameters: [string(name: 'EXPERIMENT', value: state.line.experiment)])
                }
                currentBuild.description = describe(state)
            } catch (err) {
                String how = mlopsOptions.interruption(err)
                if (how == 'abort') {
                    // a user or a newer build stopped it: not a failure, no failure notice
                    currentBuild.description = describe(state) + " - aborted in ${state.stage}"
                    echo "data line aborted in stage ${state.stage}"
                    throw err
                }
                String what = how == 'timeout' ? 'timed out' : 'failed'
                currentBuild.description = describe(state) + " - ${what} in ${state.stage}"
                mlopsNotify(command: 'failure', message: "data line ${what} in stage ${state.stage}: ${err.message ?: err}",
                            credentialsId: creds.slackCredentialsId, failOnError: false)
                throw err
            }
        }
    }
    return [branch: branch, pullRequestBuild: pullRequestBuild, commit: state.commit, dataVersion: state.dataVersion,
            changed: state.changed, line: state.line, image: state.image, pullRequest: state.pullRequest, skipped: state.skipped]
}

/** True when a remote branch contains the commit (a pull request's head does; Jenkins' merge commit does not). */
boolean onRemote(String commit) {
    String branches = ''
    withEnv(["MLOPS_COMMIT=${commit}"]) {
        branches = sh(label: 'is the commit on the remote', returnStdout: true,
                      script: 'git branch -r --contains "$MLOPS_COMMIT" 2>/dev/null || true').trim()
    }
    return branches as boolean
}

/** One Experiment per data version at a time: a second merge of the same data waits, then finds it processed. */
String lockName(Map cfg, String dataVersion) {
    if (cfg.lockResource != null) {
        return cfg.lockResource
    }
    List<String> job = (env.JOB_NAME ?: 'mlops').tokenize('/')
    String folder = job.size() > 1 ? job[0..-2].join('/') : job[0]
    return "mlops-data ${folder} ${dataVersion}"
}

def withLock(String resource, Closure body) {
    if (!resource) {
        return body()
    }
    def result = null
    lock(resource: resource) {
        result = body()
    }
    return result
}

/** Data, Slack and Kubernetes credentials for `mlops line data`, as the CLI reads them. */
def withLineCredentials(Map creds, Closure body) {
    return mlopsCredentials(bindings: [
        [type: 'usernamePassword', credentialsId: creds.dataCredentialsId, usernameVariable: 'AWS_ACCESS_KEY_ID',
         passwordVariable: 'AWS_SECRET_ACCESS_KEY'],
        [type: 'string', credentialsId: creds.slackCredentialsId, variable: 'SLACK_BOT_TOKEN'],
        [type: 'file', credentialsId: creds.kubeconfigCredentialsId, variable: 'KUBECONFIG'],
    ]) {
        body()
    }
}

List<String> mlopsEnvironment(Map cfg) {
    List<String> environment = []
    if (cfg.configFile) {
        environment << "MLOPS_CONFIG=${cfg.configFile}"
    }
    if (cfg.profile) {
        environment << "MLOPS_PROFILE=${cfg.profile}"
    }
    return environment
}

@NonCPS
String describe(Map state) {
    List<String> parts = ["data ${state.dataVersion ?: '?'}"]
    if (state.line?.experiment) {
        parts << "experiment ${state.line.experiment} (${state.line.status})"
        Object best = state.line.best_trial
        if (best instanceof Map && best.name) {
            parts << "best ${best.name}"
        }
    } else if (state.line?.status == 'unchanged') {
        parts << 'unchanged'
    }
    if (state.image?.refs) {
        parts << "image ${state.image.refs[0]}"
    }
    return parts.join(' · ')
}
