import harness.StepTestCase

/** The building-block steps: defaults, validation, the commands, credentials and retries they produce. */
class StepsTest extends StepTestCase {

    Map bindingsOf(int i = 0) { h.callsTo('withCredentials')[i].args[0].collectEntries { [(it.credentialsId): it] } }

    void testDataStatusBindsNothingAndPushBindsStorageKeysWithRetries() {
        h.credentials['mlops-dvc-s3'] = [username: 'AKIA', password: 's3']
        answerMlops('data status': [changed: true], 'data push': [pushed_files: 1])
        assert h.run('mlopsData') == [changed: true]
        assert h.callsTo('withCredentials').isEmpty()
        h.run('mlopsData', [command: 'push'])
        Map b = bindingsOf()['mlops-dvc-s3']
        assert b.bindingType == 'usernamePassword' && b.usernameVariable == 'AWS_ACCESS_KEY_ID' && b.passwordVariable == 'AWS_SECRET_ACCESS_KEY'
        assert h.callsTo('retry')[-1].args[0] == 3
        assert commands() == ['data status', 'data push']
        assert h.mlopsCalls[1].env.AWS_ACCESS_KEY_ID == 'AKIA' && !h.mlopsCalls[0].env.AWS_ACCESS_KEY_ID
    }

    void testDataWithoutCredentialsAndBadCommand() {
        answerMlops([:])
        h.run('mlopsData', [command: 'pull', credentialsId: ''])
        assert h.callsTo('withCredentials').isEmpty()
        expectError("mlopsData: option 'command' must be one of status, diff, version, push, pull (got 'fetch')") {
            h.run('mlopsData', [command: 'fetch'])
        }
    }

    void testSetupUsesMlopsOnPath() {
        h.shHandler = { Map c -> [stdout: '/usr/local/bin/mlops\n'] }
        assert h.run('mlopsSetup') == [bin: '/usr/local/bin/mlops', source: 'path']
        assert h.env.MLOPS_BIN == '/usr/local/bin/mlops'
        assert h.shCalls*.label == ['find mlops on PATH']
    }

    void testSetupCreatesPinnedVirtualenvWhenMissing() {
        h.shHandler = { Map c -> c.label == 'mlops virtualenv' ? [stdout: 'noise\n/home/j/.cache/mlops/venv-0.1.0/bin/mlops\n'] : [stdout: ''] }
        Map r = h.run('mlopsSetup')
        assert r == [bin: '/home/j/.cache/mlops/venv-0.1.0/bin/mlops', source: 'venv']
        Map venv = h.shCalls[-1]
        assert venv.env.MLOPS_VERSION == '0.1.0'
        assert venv.env.MLOPS_PACKAGE == 'mlops-pyhelpers[all]==0.1.0'
        assert venv.env.MLOPS_PYTHON == 'python3'
        assert !venv.env.containsKey('MLOPS_VENV')
        assert venv.script.contains('.mlops-ready')
    }

    void testSetupValidation() {
        h.shHandler = { Map c -> [stdout: ''] }
        expectError("mlopsSetup: install 'path' needs mlops on the agent's PATH") { h.run('mlopsSetup', [install: 'path']) }
        expectError("mlopsSetup: option 'install' must be one of auto, path, venv (got 'pip')") { h.run('mlopsSetup', [install: 'pip']) }
        expectError("mlopsSetup: option 'version' must be a package version") { h.run('mlopsSetup', [version: '1.0; rm']) }
    }

    void testExperimentLocalRun() {
        answerMlops('experiment run': [metadata: [name: 'e1']])
        h.run('mlopsExperiment', [file: 'katib/experiment.yaml', name: 'e1'])
        assert lastParams() == [file: 'katib/experiment.yaml', name: 'e1', local: true]
        assert h.callsTo('timeout')[0].args[0] == [time: 180, unit: 'MINUTES']
        assert h.callsTo('withCredentials').isEmpty()
    }

    void testExperimentClusterRunSubmitsWaitsAndReadsTheBest() {
        h.credentials['mlops-kubeconfig'] = 'apiVersion: v1'
        answerMlops('experiment submit': [metadata: [name: 'exp-7']], 'experiment wait': [status: [trials: 8]],
                    'experiment best': [bestTrialName: 'exp-7-0003'])
        Map doc = h.run('mlopsExperiment', [mode: 'cluster'])
        assert commands() == ['experiment submit', 'experiment wait', 'experiment best']
        assert h.mlopsCalls[1].params == [name: 'exp-7', timeout_minutes: 180] && h.mlopsCalls[2].params == [name: 'exp-7']
        assert doc.best == [bestTrialName: 'exp-7-0003']
        assert h.mlopsCalls.every { new File(it.env.KUBECONFIG).text == 'apiVersion: v1' }
        assert bindingsOf()['mlops-kubeconfig'].variable == 'KUBECONFIG'
        assert h.callsTo('retry')*.args*.getAt(0) == [1, 3, 1]
    }

    void testExperimentValidation() {
        expectError("mlopsExperiment: command 'validate' needs option 'file'") { h.run('mlopsExperiment', [command: 'validate']) }
        expectError("mlopsExperiment: command 'best' needs option 'name'") { h.run('mlopsExperiment', [command: 'best', mode: 'cluster']) }
        expectError("mlopsExperiment: command 'wait' needs mode 'cluster'") { h.run('mlopsExperiment', [command: 'wait', name: 'x']) }
        expectError("mlopsExperiment: option 'mode' must be one of local, cluster (got 'katib')") { h.run('mlopsExperiment', [mode: 'katib']) }
    }

    void testModelCommandsAndParams() {
        answerMlops([:])
        h.run('mlopsModel', [experiment: 'exp-7'])
        assert lastParams() == [experiment: 'exp-7']
        h.run('mlopsModel', [command: 'register', runId: 'abc'])
        assert lastParams() == [run_id: 'abc']
        h.run('mlopsModel', [command: 'promote', version: 3])
        assert lastParams() == [version: '3']
        expectError("mlopsModel: command 'promote' needs option 'version'") { h.run('mlopsModel', [command: 'promote']) }
        assert h.callsTo('withCredentials').isEmpty()
        h.credentials['mlflow'] = [username: 'u', password: 'p']
        h.run('mlopsModel', [command: 'rollback', credentialsId: 'mlflow'])
        assert h.mlopsCalls[-1].env.MLFLOW_TRACKING_USERNAME == 'u' && h.mlopsCalls[-1].env.MLFLOW_TRACKING_PASSWORD == 'p'
    }

    void testDeployCredentialsAndRetriesPerCommand() {
        h.credentials['mlops-github-token'] = 'tok'
        h.credentials['mlops-kubeconfig'] = 'kube'
        answerMlops([:])
        h.run('mlopsDeploy')
        assert h.callsTo('withCredentials').isEmpty() && h.callsTo('retry')[-1].args[0] == 1
        h.run('mlopsDeploy', [command: 'push'])
        assert h.mlopsCalls[-1].env.GITHUB_TOKEN == 'tok' && h.callsTo('retry')[-1].args[0] == 2
        h.run('mlopsDeploy', [command: 'wait'])
        assert h.mlopsCalls[-1].env.KUBECONFIG && h.mlopsCalls[-1].env.GITHUB_TOKEN == 'tok' && h.callsTo('retry')[-1].args[0] == 3
        assert lastParams() == [timeout_minutes: 20]  // the CLI ends the wait itself, with Argo CD's last state
        h.run('mlopsDeploy', [command: 'wait', timeoutMinutes: 5, params: [rollback_on_failure: true, revision: 'abc1234']])
        assert lastParams() == [rollback_on_failure: true, revision: 'abc1234', timeout_minutes: 5]
        assert h.callsTo('retry')[-1].args[0] == 1  // a repeated wait would wait for the revert commit instead
        expectError("mlopsDeploy: option 'retries' must be 0 with params.rollback_on_failure (got 2)") {
            h.run('mlopsDeploy', [command: 'wait', retries: 2, params: [rollback_on_failure: true]])
        }
        h.run('mlopsDeploy', [command: 'smoke', retries: 0, kubeconfigCredentialsId: ''])
        assert h.callsTo('retry')[-1].args[0] == 1 && !h.mlopsCalls[-1].env.KUBECONFIG
        expectError("mlopsDeploy: option 'retries' must be a whole number >= 0 or null (got -2)") { h.run('mlopsDeploy', [retries: -2]) }
    }

    void testNotifyBindsTheTokenAndCanTolerateFailure() {
        h.credentials['mlops-slack'] = 'xoxb-1'
        answerMlops('notify experiment': [delivery: [via: 'slack']])
        assert h.run('mlopsNotify', [name: 'e1']) == [delivery: [via: 'slack']]
        assert lastParams() == [name: 'e1'] && h.mlopsCalls[-1].env.SLACK_BOT_TOKEN == 'xoxb-1'
        h.run('mlopsNotify', [credentialsVariable: 'SLACK_WEBHOOK_URL'])
        assert h.mlopsCalls[-1].env.SLACK_WEBHOOK_URL == 'xoxb-1' && !h.mlopsCalls[-1].env.SLACK_BOT_TOKEN
        h.mlopsHandler = { Map c -> [exitCode: 1, stderr: 'mlops: error: slack unreachable\n'] }
        Map r = h.run('mlopsNotify', [command: 'failure', message: 'boom', failOnError: false])
        assert r == [sent: false, error: 'mlops notify failure failed: slack unreachable']
        assert lastParams() == [message: 'boom']
        expectError('slack unreachable') { h.run('mlopsNotify') }
    }

    void testImageWithBuildkitTagsDataVersionAndCommit() {
        h.credentials['mlops-registry'] = '{"auths": {}}'
        answerMlops('config show': [config: [image: [name: 'registry.example.com/ml/train', dockerfile: 'docker/train.Dockerfile', context: '.']]],
                    'data version': [data_version: 'dv-1234abcd'])
        Map r = h.run('mlopsImage', [commit: '89abcdef0123456789abcdef0123456789abcdef'])
        assert r.refs == ['registry.example.com/ml/train:dv-1234abcd-89abcdef'] && r.builder == 'buildkit'
        Map sh = h.shCalls.find { it.label == 'buildkit build' }
        assert sh.container == 'buildkit'
        assert sh.env.MLOPS_IMAGE_REFS == 'registry.example.com/ml/train:dv-1234abcd-89abcdef'
        assert sh.env.MLOPS_DOCKERFILE == 'docker/train.Dockerfile' && sh.env.MLOPS_CONTEXT == '.' && sh.env.MLOPS_PUSH == 'true'
        assert new File(sh.env.DOCKER_CONFIG_JSON).text == '{"auths": {}}'
        // flags as moby/buildkit's README documents them: Dockerfile frontend, the two local sources, an image output
        assert sh.script.contains('buildctl-daemonless.sh build --frontend dockerfile.v0')
        assert sh.script.contains('--local context="$MLOPS_CONTEXT"')
        assert sh.script.contains('--local dockerfile="$(dirname "$MLOPS_DOCKERFILE")" --opt filename="$(basename "$MLOPS_DOCKERFILE")"')
        assert sh.script.contains('--output "type=image,\\"name=$names\\",push=$MLOPS_PUSH"')
        assert sh.script.contains('cp "$DOCKER_CONFIG_JSON" "$DOCKER_CONFIG/config.json"')
        assert h.callsTo('retry')[-1].args[0] == 2
        assert !h.shCalls.any { it.label == 'commit of the workspace' }
    }

    void testImageWithTheMaintainedKanikoFork() {
        h.credentials['mlops-registry'] = '{"auths": {}}'
        answerMlops([:])
        h.run('mlopsImage', [builder: 'kaniko', image: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.',
                             dataVersion: 'dv-1', commit: 'abcdef0123'])
        Map sh = h.shCalls.find { it.label == 'kaniko build' }
        assert sh.container == 'kaniko'
        assert sh.script.contains('/kaniko/executor --context "dir://$MLOPS_CONTEXT" --dockerfile "$MLOPS_DOCKERFILE" "$@"')
        assert sh.env.DOCKER_CONFIG.startsWith(h.workspace.path + '@tmp/mlops-docker-config-')
        String template = new File(ROOT, 'resources/mlops/pod-template-kaniko.yaml').text
        assert template.contains('image: ghcr.io/osscontainertools/kaniko:v') && !template.contains('image: gcr.io/kaniko-project')
    }

    void testPodTemplateRunsBuildkitRootlessAndDaemonless() {
        String yaml = new File(ROOT, 'resources/mlops/pod-template.yaml').text
        assert yaml =~ /image: moby\/buildkit:v\d+\.\d+\.\d+-rootless\n/       // a pinned release, not :rootless or :master
        assert yaml.contains('value: --oci-worker-no-process-sandbox')
        assert yaml.contains('runAsUser: 1000') && yaml.contains('type: Unconfined')
        assert yaml.contains('mountPath: /home/user/.local/share/buildkit')
        assert !yaml.contains('kaniko-project')
    }

    void testImageWithDockerAndValidation() {
        h.credentials['mlops-registry'] = [username: 'robot', password: 'pw']
        answerMlops([:])
        h.shHandler = { Map c -> c.label == 'commit of the workspace' ? [stdout: 'fedcba9876543210fedcba9876543210fedcba98\n'] : [:] }
        Map r = h.run('mlopsImage', [builder: 'docker', image: 'localhost:5000/train', dockerfile: 'D', context: 'ctx', dataVersion: 'dv-1', push: false])
        assert r.refs == ['localhost:5000/train:dv-1-fedcba98']    // the workspace's HEAD, not env.GIT_COMMIT
        Map sh = h.shCalls.find { it.label == 'docker build' }
        assert sh.container == null && sh.env.REGISTRY_USER == 'robot' && sh.env.MLOPS_REGISTRY == 'localhost:5000' && sh.env.MLOPS_PUSH == 'false'
        assert commands().isEmpty()
        expectError("mlopsImage: option 'image' must be an image repository") { h.run('mlopsImage', [image: 'Bad Name', dockerfile: 'D', context: '.', dataVersion: 'dv-1']) }
        h.shHandler = { Map c -> [stdout: 'fatal: not a git repository\n'] }
        expectError("mlopsImage: option 'commit' must be a git commit id") { h.run('mlopsImage', [image: 'r/x', dockerfile: 'D', context: '.', dataVersion: 'dv-1']) }
    }

    void testPullRequestFromTheBranch() {
        h.credentials['mlops-github-token'] = 'tok'
        answerMlops('pr open': [number: 12])
        h.env.BRANCH_NAME = 'data/batch-2'
        assert h.run('mlopsPullRequest') == [number: 12]
        assert lastParams() == [branch: 'data/batch-2']          // base: github.base of mlops.yaml
        assert h.mlopsCalls[-1].env.GITHUB_TOKEN == 'tok'
        h.run('mlopsPullRequest', [base: 'main', title: 'New data', since: 'v1', experiment: 'e1'])
        assert lastParams() == [branch: 'data/batch-2', base: 'main', title: 'New data', since: 'v1', experiment: 'e1']
        h.env.BRANCH_NAME = 'main'
        expectError("mlopsPullRequest: option 'branch' must differ from 'base' (both 'main')") { h.run('mlopsPullRequest', [base: 'main']) }
    }

    void testAgentKubernetesUsesThePodTemplateAndPythonContainer() {
        String inside = null
        h.run('mlopsAgent', [agent: 'kubernetes'], { -> inside = 'ran' })
        assert inside == 'ran'
        assert h.callsTo('podTemplate')[0].args[0].yaml == new File(ROOT, 'resources/mlops/pod-template.yaml').text
        assert h.callsTo('node')[0].args[0] == 'mlops-pod-1'
        assert h.callsTo('container')[0].args[0] == 'python'
        h.calls.clear()
        h.run('mlopsAgent', [label: 'linux'], { -> null })
        assert h.callsTo('node')[0].args[0] == 'linux' && h.callsTo('podTemplate').isEmpty()
    }
}
