import harness.StepTestCase

/** The two lines with a mocked CLI: which stages run on which branch, hand-over, failure notices, rollback. */
class LinesTest extends StepTestCase {

    @Override
    void setUp() {
        super.setUp()
        ['mlops-dvc-s3', 'mlops-registry'].each { h.credentials[it] = [username: 'u', password: 'p'] }
        ['mlops-github-token', 'mlops-slack', 'mlops-kubeconfig'].each { h.credentials[it] = 'secret' }
        h.shHandler = { Map c -> [stdout: c.label == 'find mlops on PATH' ? '/usr/bin/mlops' : ''] }
    }

    Map dataAnswers(boolean changed) {
        return ['data status': [data_version: 'dv-ab12cd34', changed: changed],
                'config show': [config: [image: [name: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.']]],
                'pr open': [number: 5],
                'line data': [status: 'completed', data_version: 'dv-ab12cd34', experiment: 'taxi-fare-ab12cd34',
                              best_trial: [name: 'taxi-fare-ab12cd34-0003']]]
    }

    void testClusterBranchWithNewDataPushesBuildsAndOpensThePullRequest() {
        h.env.BRANCH_NAME = 'data/batch-2'
        answerMlops(dataAnswers(true))
        Map r = h.run('mlopsDataLine', [mode: 'cluster', agent: 'kubernetes'])
        assert commands() == ['config validate', 'data status', 'data push', 'config show', 'pr open']
        assert h.callsTo('checkout').size() == 1
        Map build = h.shCalls.find { it.label == 'buildkit build' }
        assert build.container == 'buildkit'
        assert build.env.MLOPS_IMAGE_REFS == 'registry.example.com/ml/train:dv-ab12cd34-01234567'
        assert h.mlopsCalls.find { it.command == 'pr open' }.params == [branch: 'data/batch-2', base: 'main']
        assert r.pullRequest == [number: 5] && r.line == null
        assert h.callsTo('build').isEmpty()
        assert h.currentBuild.description == 'data dv-ab12cd34 · image registry.example.com/ml/train:dv-ab12cd34-01234567'
    }

    void testBranchWithoutNewDataDoesNothing() {
        h.env.BRANCH_NAME = 'feature/x'
        answerMlops(dataAnswers(false))
        h.run('mlopsDataLine', [mode: 'cluster'])
        assert commands() == ['config validate', 'data status']
        assert h.log.toString().count('skipped: no new data') == 3
        assert h.log.toString().contains('skipped: not the main branch')
    }

    void testBranchComparesItsDataWithTheBaseRevision() {
        h.env.BRANCH_NAME = 'feature/code-only'
        Map answers = dataAnswers(true)
        answers['data status'] = [data_version: 'dv-ab12cd34', changed: true, changed_from_base: false]
        answerMlops(answers)
        h.run('mlopsDataLine', [mode: 'cluster', baseRevision: 'origin/main'])
        assert h.mlopsCalls.find { it.command == 'data status' }.params == [base: 'origin/main']
        assert commands() == ['config validate', 'data status']
    }

    void testClusterMainRunsTheLineWithItsCredentialsAndHandsOver() {
        answerMlops(dataAnswers(true))
        Map r = h.run('mlopsDataLine', [mode: 'cluster', profile: 'cluster', deployJob: 'taxi-fare/deploy'])
        // the merged commit's image is built, and the Experiment's trials run it
        assert commands() == ['config validate', 'data status', 'config show', 'line data']
        String ref = "registry.example.com/ml/train:dv-ab12cd34-${h.checkoutCommit.take(8)}"
        assert h.shCalls.find { it.label?.contains('build') && it.env.MLOPS_IMAGE_REFS }.env.MLOPS_IMAGE_REFS == ref
        Map line = h.mlopsCalls[-1]
        assert line.params == [local: false, force: false, image: ref]
        assert line.env.AWS_ACCESS_KEY_ID == 'u' && line.env.SLACK_BOT_TOKEN == 'secret' && line.env.KUBECONFIG
        assert line.env.MLOPS_PROFILE == 'cluster'
        assert h.callsTo('timeout')[0].args[0] == [time: 240, unit: 'MINUTES']
        Map build = h.callsTo('build')[0].args[0]
        assert build.job == 'taxi-fare/deploy' && !build.wait && build.parameters[0].value == 'taxi-fare-ab12cd34'
        assert r.line.status == 'completed'
        assert h.currentBuild.description == "data dv-ab12cd34 · experiment taxi-fare-ab12cd34 (completed) · best taxi-fare-ab12cd34-0003 · image ${ref}"
    }

    void testForceRunsProcessedDataAgain() {
        Map answers = dataAnswers(false)
        answerMlops(answers)
        h.run('mlopsDataLine', [force: true, deployJob: ''])
        assert h.mlopsCalls[-1].params == [local: true, force: true]
        assert h.callsTo('build').isEmpty()
        assert h.callsTo('withCredentials').isEmpty()   // local mode binds nothing it was not given
    }

    void testDataLineFailureSendsANoticeNamingTheStageAndFails() {
        Map answers = dataAnswers(true)
        answers['line data'] = { Map c -> [exitCode: 1, stderr: 'mlops: error: 3 of 8 trials failed\n'] }
        answerMlops(answers)
        expectError('mlops line data failed: 3 of 8 trials failed') {
            h.run('mlopsDataLine', [mode: 'local', slackCredentialsId: 'mlops-slack'])
        }
        Map notice = h.mlopsCalls[-1]
        assert notice.command == 'notify failure'
        assert notice.params.message == 'data line failed in stage Experiment: mlops line data failed: 3 of 8 trials failed'
        assert notice.env.SLACK_BOT_TOKEN == 'secret'
        assert h.currentBuild.description == 'data dv-ab12cd34 - failed in Experiment'
    }

    Map deployAnswers(boolean promoted) {
        return ['model train': [run_id: 'r1', data_version: 'dv-ab12cd34'],
                'model register': [promoted: promoted, reason: promoted ? 'better by 4%' : 'not better', name: 'taxi-fare',
                                   candidate: [version: '4']]]
    }

    void testDeployLineLocalPromotesServesSmokesAndStops() {
        h.params.EXPERIMENT = 'taxi-fare-ab12cd34'
        answerMlops(deployAnswers(true))
        Map r = h.run('mlopsDeployLine')
        assert commands() == ['config validate', 'model train', 'model register', 'deploy render', 'deploy push',
                              'deploy serve', 'deploy smoke', 'deploy stop', 'notify deployment']
        assert h.mlopsCalls[1].params == [experiment: 'taxi-fare-ab12cd34']
        assert h.mlopsCalls[2].params == [run_id: 'r1']
        assert h.mlopsCalls[5].params == [local: true]
        assert r.deployed && !r.rolledBack
        assert h.stages == ['Checkout', 'Setup', 'Train', 'Register and gate', 'Render', 'GitOps push', 'Serve', 'Smoke test']
        assert h.currentBuild.description == 'data dv-ab12cd34 · model taxi-fare v4 · champion · deployed'
        assert h.callsTo('withCredentials').isEmpty()
    }

    void testDeployLineStopsAtTheGate() {
        answerMlops(deployAnswers(false))
        h.run('mlopsDeployLine', [mode: 'cluster'])
        assert commands() == ['config validate', 'model train', 'model register', 'notify deployment']
        assert h.log.toString().count('skipped: the model did not pass the gate') == 4
        assert h.currentBuild.description == 'data dv-ab12cd34 · model taxi-fare v4 · not promoted'
    }

    void testDeployLineClusterFailureAfterPromotionRollsBack() {
        Map answers = deployAnswers(true)
        answers['deploy smoke'] = { Map c -> [exitCode: 1, stderr: 'mlops: error: 3 of 20 requests failed\n'] }
        answers['deploy push'] = [changed: true, commit: 'c0ffee1234567']
        answerMlops(answers)
        expectError('mlops deploy smoke failed: 3 of 20 requests failed') {
            h.run('mlopsDeployLine', [mode: 'cluster', smoke: [url: 'https://taxi.example.org', modelName: 'taxi-fare',
                                                                inputExample: 'input.json']])
        }
        assert h.mlopsCalls.find { it.command == 'deploy smoke' }.params ==
            [url: 'https://taxi.example.org', model_name: 'taxi-fare', input_example: 'input.json']
        assert commands() == ['config validate', 'model train', 'model register', 'deploy render', 'deploy push', 'deploy wait',
                              'deploy smoke', 'deploy smoke', 'deploy smoke',
                              'model rollback', 'deploy render', 'deploy push', 'notify failure']
        Map wait = h.mlopsCalls.find { it.command == 'deploy wait' }
        assert wait.env.KUBECONFIG && wait.params == [revision: 'c0ffee1234567', timeout_minutes: 20]
        assert h.mlopsCalls.find { it.command == 'deploy push' }.env.GITHUB_TOKEN == 'secret'
        assert h.mlopsCalls[-1].params.message.startsWith('deploy line failed in stage Smoke test')
        assert h.currentBuild.description == 'data dv-ab12cd34 · model taxi-fare v4 · champion · rolled back - failed in Smoke test'
    }

    void testDeployLineClusterWithoutSmokeEndpointSkipsTheSmokeStage() {
        Map answers = deployAnswers(true)
        answers['deploy push'] = [changed: true, commit: 'c0ffee1234567']
        answerMlops(answers)
        h.run('mlopsDeployLine', [mode: 'cluster'])
        assert !commands().contains('deploy smoke') && !commands().contains('model rollback')
        assert h.log.toString().contains('skipped: no smoke endpoint for cluster mode')
    }
}
