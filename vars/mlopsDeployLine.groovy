/*
 * Line 2, Experiment -> serving. Run by the deploy job (started by the data line on the main
 * branch, or by hand with an EXPERIMENT parameter): train the best trial, register it (the gate:
 * it becomes champion only when it beats the current one), render the SeldonDeployment or
 * InferenceService, push it to the GitOps repository, wait for Argo CD and smoke-test it. Local
 * mode serves with MLServer on the agent instead of Argo CD. A failure after promotion rolls the champion back and redeploys it.
 * An abort (a user, a newer build) is reported as an abort, not as a failure notice; a timeout is a
 * failure. Skipped stages are marked skipped (pipeline-model-definition's Utils, when installed).
 */

def call(Map config = [:]) {
    Map defaults = [
        mode: 'local',                 // local: MLflow/GitOps state in .mlops/, served by MLServer on the agent; cluster: Argo CD
        experiment: null,              // Experiment whose best trial is trained; null = params.EXPERIMENT, else the latest
        agent: 'node',                 // node | kubernetes | none, as in mlopsDataLine
        agentLabel: '',                // node label for agent 'node'; '' = any agent
        checkout: true,                // run `checkout scm` first
        install: 'auto',               // how mlopsSetup finds mlops: auto | path | venv
        configFile: null,              // mlops.yaml (MLOPS_CONFIG); null = found in the workspace
        profile: null,                 // configuration profile (MLOPS_PROFILE); null = the file's default
        rollbackOnFailure: true,       // after a failed deployment of a new champion, restore the previous one
        trainTimeoutMinutes: 60,       // limit of the training stage
        deployTimeoutMinutes: 20,      // limit of waiting for Argo CD / the local server
        smoke: [:],                    // cluster: [url:, modelName:, inputExample:] of the served model as reachable from the agent;
                                       // [:] = no endpoint: the smoke stage is skipped with that reason (Argo CD's Healthy stands)
        mlflowCredentialsId: '',                     // username/password for MLflow basic auth; '' = none
        dataCredentialsId: 'mlops-dvc-s3',           // cluster: username/password, S3 keys to pull the Experiment's data for training
        githubCredentialsId: 'mlops-github-token',   // secret text: token for the GitOps repository
        slackCredentialsId: 'mlops-slack',           // secret text: Slack bot token
        kubeconfigCredentialsId: 'mlops-kubeconfig', // secret file: kubeconfig for Katib (training reads the Experiment), Argo CD and the smoke test
    ]
    Map cfg = mlopsOptions(step: 'mlopsDeployLine', defaults: defaults, config: config,
                           choices: [mode: ['local', 'cluster'], agent: ['node', 'kubernetes', 'none'],
                                     install: ['auto', 'path', 'venv']])
    Map creds = [:]
    defaults.keySet().findAll { it.endsWith('CredentialsId') }.each { String key ->
        creds[key] = (cfg.mode == 'cluster' || config.containsKey(key)) ? cfg[key] : ''
    }
    boolean cluster = cfg.mode == 'cluster'
    String experiment = cfg.experiment ?: (params.EXPERIMENT ?: null)
    Map state = [stage: '', trained: null, registered: null, promoted: false, deployed: false, rolledBack: false]

    mlopsAgent(agent: cfg.agent, label: cfg.agentLabel) {
        withEnv(mlopsEnvironment(cfg)) {
            try {
                mlopsStage(name: 'Checkout', when: cfg.checkout, skipReason: 'checkout disabled', state: state) {
                    checkout scm
                }
                mlopsStage(name: 'Setup', state: state) {
                    mlopsSetup(install: cfg.install)
                    mlopsCli(command: 'config validate')
                }
                mlopsStage(name: 'Train', state: state) {
                    // cluster: `model train` reads the Experiment from Katib and pulls its data version on this agent
                    mlopsCredentials(bindings: !cluster ? [] : [
                        [type: 'usernamePassword', credentialsId: creds.dataCredentialsId, usernameVariable: 'AWS_ACCESS_KEY_ID',
                         passwordVariable: 'AWS_SECRET_ACCESS_KEY'],
                        [type: 'file', credentialsId: creds.kubeconfigCredentialsId, variable: 'KUBECONFIG']]) {
                        state.trained = mlopsModel(command: 'train', experiment: experiment, timeoutMinutes: cfg.trainTimeoutMinutes,
                                                   credentialsId: creds.mlflowCredentialsId)
                    }
                }
                mlopsStage(name: 'Register and gate', state: state) {
                    state.registered = mlopsModel(command: 'register', runId: state.trained.run_id, retries: 1,
                                                  credentialsId: creds.mlflowCredentialsId)
                    state.promoted = state.registered.promoted as boolean
                    echo "gate: ${state.registered.reason}"
                }
                String skip = 'the model did not pass the gate'
                mlopsStage(name: 'Render', when: state.promoted, skipReason: skip, state: state) {
                    mlopsDeploy(command: 'render')
                }
                Map pushed = [:]
                mlopsStage(name: 'GitOps push', when: state.promoted, skipReason: skip, state: state) {
                    pushed = mlopsDeploy(command: 'push', gitopsCredentialsId: creds.githubCredentialsId)
                }
                mlopsStage(name: cluster ? 'Argo CD sync' : 'Serve', when: state.promoted, skipReason: skip, state: state) {
                    if (cluster) {
                        // Argo CD must reach the commit just pushed (or a later one containing it)
                        mlopsDeploy(command: 'wait', kubeconfigCredentialsId: creds.kubeconfigCredentialsId,
                                    gitopsCredentialsId: creds.githubCredentialsId,
                                    params: pushed.commit ? [revision: pushed.commit] : [:],
                                    timeoutMinutes: cfg.deployTimeoutMinutes)
                    } else {
                        mlopsDeploy(command: 'serve', params: [local: true], timeoutMinutes: cfg.deployTimeoutMinutes)
                    }
                }
                // cluster: the served model is only reachable where the user says it is (ingress, port-forward)
                boolean canSmoke = !cluster || cfg.smoke
                String noSmoke = 'no smoke endpoint for cluster mode (set smoke: [url:, modelName:, inputExample:])'
                mlopsStage(name: 'Smoke test', when: state.promoted && canSmoke, skipReason: state.promoted ? noSmoke : skip,
                           state: state) {
                    try {
                        Map smokeParams = cluster ? [url: cfg.smoke.url, model_name: cfg.smoke.modelName,
                                                     input_example: cfg.smoke.inputExample] : [:]
                        mlopsDeploy(command: 'smoke', params: smokeParams, kubeconfigCredentialsId: creds.kubeconfigCredentialsId)
                    } finally {
                        if (!cluster) {
                            mlopsDeploy(command: 'stop')
                        }
                    }
                    state.deployed = true
                }
                state.deployed = state.deployed || (state.promoted && !canSmoke)
                currentBuild.description = describe(state)
                mlopsNotify(command: 'deployment', credentialsId: creds.slackCredentialsId, failOnError: false)
            } catch (err) {
                String how = mlopsOptions.interruption(err)
                if (how == 'abort') {
                    // stopped by a user or a newer build: no rollback behind their back, no failure notice
                    currentBuild.description = describe(state) + " - aborted in ${state.stage}"
                    echo "deploy line aborted in stage ${state.stage}"
                    throw err
                }
                if (state.promoted && !state.deployed && cfg.rollbackOnFailure) {
                    rollback(state, creds)
                }
                String what = how == 'timeout' ? 'timed out' : 'failed'
                currentBuild.description = describe(state) + " - ${what} in ${state.stage}"
                mlopsNotify(command: 'failure', message: "deploy line ${what} in stage ${state.stage}: ${err.message ?: err}",
                            credentialsId: creds.slackCredentialsId, failOnError: false)
                throw err
            }
        }
    }
    return state
}

/** Give the champion alias back to the previous version and push its manifest; errors here only warn. */
def rollback(Map state, Map creds) {
    stage('Rollback') {
        try {
            mlopsModel(command: 'rollback', credentialsId: creds.mlflowCredentialsId)
            mlopsDeploy(command: 'render')
            mlopsDeploy(command: 'push', gitopsCredentialsId: creds.githubCredentialsId)
            state.rolledBack = true
        } catch (err) {
            if (mlopsOptions.interruption(err)) {
                throw err
            }
            echo "WARNING: rollback failed: ${err.message}"
        }
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
    Map candidate = state.registered?.candidate instanceof Map ? state.registered.candidate : [:]
    List<String> parts = []
    if (state.trained?.data_version) {
        parts << "data ${state.trained.data_version}"
    }
    if (candidate.version) {
        parts << "model ${state.registered.name ?: ''} v${candidate.version}".replace('  ', ' ')
        parts << (state.promoted ? 'champion' : 'not promoted')
    }
    if (state.deployed) {
        parts << 'deployed'
    }
    if (state.rolledBack) {
        parts << 'rolled back'
    }
    return parts ? parts.join(' · ') : 'no model'
}
