/*
 * Line 1, new data -> Experiment. The multibranch job runs it on every branch:
 *   a branch whose data changed: push the data, build the training image, open/update the pull request;
 *   the main branch (after the merge): run the Experiment for the new data version (`mlops line data`:
 *   push, Experiment, Slack notice, data marked processed) and start the deploy line.
 * A failure sends a Slack notice naming the stage. Local mode runs everything on the agent.
 */

def call(Map config = [:]) {
    Map defaults = [
        mode: 'local',                  // local: state in .mlops/ of the workspace, no image, no pull request; cluster: S3, kaniko, GitHub, Katib
        mainBranch: 'main',             // branch whose builds run the Experiment; other branches prepare a pull request
        agent: 'node',                  // node: an agent (agentLabel); kubernetes: pod from resources/mlops/pod-template.yaml; none: the current node
        agentLabel: '',                 // node label for agent 'node'; '' = any agent
        checkout: true,                 // run `checkout scm` first
        install: 'auto',                // how mlopsSetup finds mlops: auto | path | venv
        configFile: null,               // mlops.yaml (MLOPS_CONFIG); null = found in the workspace
        profile: null,                  // configuration profile (MLOPS_PROFILE); null = the file's default
        force: false,                   // run the Experiment even when this data version was processed
        baseRevision: null,             // branches: compare the data with this revision (e.g. 'origin/main', which the
                                        // checkout must fetch); null = the workspace's processed marker
        deployJob: '../deploy',         // job started after a completed Experiment on the main branch; '' = none
        experimentTimeoutMinutes: 240,  // limit of the Experiment stage
        imageBuilder: 'kaniko',         // cluster mode: kaniko | docker
        dataCredentialsId: 'mlops-dvc-s3',           // username/password: S3 keys of the DVC remote
        registryCredentialsId: 'mlops-registry',     // kaniko: docker config.json file; docker: username/password
        githubCredentialsId: 'mlops-github-token',   // secret text: GitHub token for the pull request
        slackCredentialsId: 'mlops-slack',           // secret text: Slack bot token
        kubeconfigCredentialsId: 'mlops-kubeconfig', // secret file: kubeconfig for Katib (cluster mode)
    ]
    Map cfg = mlopsOptions(step: 'mlopsDataLine', defaults: defaults, config: config,
                           choices: [mode: ['local', 'cluster'], agent: ['node', 'kubernetes', 'none'],
                                     install: ['auto', 'path', 'venv'], imageBuilder: ['kaniko', 'docker']])
    // Local mode binds only the credentials the Jenkinsfile names, so a bare Jenkins can run it.
    Map creds = [:]
    defaults.keySet().findAll { it.endsWith('CredentialsId') }.each { String key ->
        creds[key] = (cfg.mode == 'cluster' || config.containsKey(key)) ? cfg[key] : ''
    }
    String branch = env.BRANCH_NAME ?: cfg.mainBranch    // a plain pipeline job counts as the main branch
    boolean onMain = branch == cfg.mainBranch
    boolean cluster = cfg.mode == 'cluster'
    Map state = [stage: '', changed: false, dataVersion: null, line: null, image: null, pullRequest: null]

    mlopsAgent(agent: cfg.agent, label: cfg.agentLabel) {
        withEnv(mlopsEnvironment(cfg)) {
            try {
                conditionalStage(state, 'Checkout', cfg.checkout, 'checkout disabled') {
                    checkout scm
                }
                conditionalStage(state, 'Setup', true, '') {
                    mlopsSetup(install: cfg.install)
                    mlopsCli(command: 'config validate')
                }
                conditionalStage(state, 'Data status', true, '') {
                    boolean againstBase = !onMain && cfg.baseRevision
                    Map status = mlopsData(command: 'status', params: againstBase ? [base: cfg.baseRevision] : [:])
                    state.dataVersion = status.data_version
                    state.changed = (againstBase ? status.changed_from_base as boolean : status.changed as boolean) || cfg.force
                    echo "data ${status.data_version}: ${state.changed ? 'new, to be processed' : 'already processed'}"
                }
                boolean branchWork = !onMain && state.changed
                conditionalStage(state, 'Push data', branchWork, onMain ? 'main branch' : 'no new data') {
                    mlopsData(command: 'push', credentialsId: creds.dataCredentialsId)
                }
                conditionalStage(state, 'Training image', branchWork && cluster, cluster ? 'no new data' : 'local mode') {
                    state.image = mlopsImage(builder: cfg.imageBuilder, dataVersion: state.dataVersion,
                                             credentialsId: creds.registryCredentialsId)
                }
                conditionalStage(state, 'Pull request', branchWork && cluster, cluster ? 'no new data' : 'local mode') {
                    state.pullRequest = mlopsPullRequest(head: branch, base: cfg.mainBranch,
                                                         credentialsId: creds.githubCredentialsId)
                }
                conditionalStage(state, 'Experiment', onMain && state.changed, onMain ? 'data already processed' : 'not the main branch') {
                    timeout(time: cfg.experimentTimeoutMinutes, unit: 'MINUTES') {
                        withLineCredentials(creds) {
                            state.line = mlopsCli(command: 'line data', params: [local: !cluster, force: cfg.force])
                        }
                    }
                }
                boolean handOver = state.line?.status == 'completed' && cfg.deployJob
                conditionalStage(state, 'Deploy line', handOver, cfg.deployJob ? 'no completed Experiment' : 'no deployJob') {
                    build(job: cfg.deployJob, wait: false, parameters: [string(name: 'EXPERIMENT', value: state.line.experiment)])
                }
                currentBuild.description = describe(state)
            } catch (err) {
                currentBuild.description = describe(state) + " - failed in ${state.stage}"
                mlopsNotify(command: 'failure', message: "data line failed in stage ${state.stage}: ${err.message}",
                            credentialsId: creds.slackCredentialsId, failOnError: false)
                throw err
            }
        }
    }
    return [branch: branch, dataVersion: state.dataVersion, changed: state.changed, line: state.line,
            image: state.image, pullRequest: state.pullRequest]
}

/** A stage that runs its body only when the condition holds (the scripted form of `when`). */
def conditionalStage(Map state, String name, boolean condition, String reason, Closure body) {
    stage(name) {
        if (condition) {
            state.stage = name
            body()
        } else {
            echo "skipped: ${reason}"
        }
    }
}

/** Data, Slack and Kubernetes credentials for `mlops line data`, as the CLI reads them. */
def withLineCredentials(Map creds, Closure body) {
    List bindings = []
    if (creds.dataCredentialsId) {
        bindings << usernamePassword(credentialsId: creds.dataCredentialsId, usernameVariable: 'AWS_ACCESS_KEY_ID',
                                     passwordVariable: 'AWS_SECRET_ACCESS_KEY')
    }
    if (creds.slackCredentialsId) {
        bindings << string(credentialsId: creds.slackCredentialsId, variable: 'SLACK_BOT_TOKEN')
    }
    if (creds.kubeconfigCredentialsId) {
        bindings << file(credentialsId: creds.kubeconfigCredentialsId, variable: 'KUBECONFIG')
    }
    if (!bindings) {
        return body()
    }
    withCredentials(bindings) {
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
