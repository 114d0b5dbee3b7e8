import groovy.json.JsonSlurper
import harness.PipelineError
import harness.PipelineHarness
import harness.StepTestCase
import jenkins.model.CauseOfInterruption
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException
import org.jenkinsci.plugins.workflow.steps.TimeoutStepExecution

/**
 * What real Jenkins does that a home-made pipeline runtime hides, one test per behaviour the library
 * once got wrong: the commit comes from `checkout scm`, pull-request builds run as PR-N, writeJSON is
 * json-lib, secrets are masked only in the console, Jenkins' timeout must outlast the CLI's, merges of the
 * same data must not run two Experiments, an abort is not a failure, skipped stages are marked skipped,
 * and `docker login` must not leave credentials on the agent.
 */
class JenkinsSemanticsTest extends StepTestCase {

    static final String LIBRARY_COMMIT = '1111111111111111111111111111111111111111'
    static final String CHECKOUT_COMMIT = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00'
    static final String CANARY = 'canary-T0KEN-52ab9'

    Map<String, List<String>> remoteBranches = [:]

    @Override
    void setUp() {
        super.setUp()
        credentials(h)
        h.checkoutCommit = CHECKOUT_COMMIT
        h.shHandler = { Map c -> shAnswer(c) }
    }

    static void credentials(PipelineHarness harness) {
        ['mlops-dvc-s3', 'mlops-registry'].each { harness.credentials[it] = [username: 'u', password: 'p'] }
        ['mlops-github-token', 'mlops-slack', 'mlops-kubeconfig'].each { harness.credentials[it] = 'secret' }
    }

    Map shAnswer(Map c) {
        if (c.label == 'find mlops on PATH') {
            return [stdout: '/usr/bin/mlops']
        }
        if (c.label == 'is the commit on the remote') {
            return [stdout: (remoteBranches[c.env.MLOPS_COMMIT] ?: []).collect { "  ${it}\n" }.join('')]
        }
        return [:]
    }

    Map answers(boolean changed = true) {
        return ['data status': [data_version: 'dv-ab12cd34', changed: changed],
                'config show': [config: [image: [name: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.']]],
                'pr open': [number: 12, action: 'updated'],
                'line data': [status: 'completed', data_version: 'dv-ab12cd34', experiment: 'taxi-fare-ab12cd34']]
    }

    // ------------------------------------------------------------------ the commit

    void testTheImageIsTaggedWithTheCommitCheckoutReturnsNotEnvGitCommit() {
        h.env.BRANCH_NAME = 'data/batch-2'
        answerMlops(answers())
        // a scripted pipeline: env.GIT_COMMIT is not set at all
        Map r = h.run('mlopsDataLine', [mode: 'cluster'])
        assert r.commit == CHECKOUT_COMMIT
        assert r.image.refs == ['registry.example.com/ml/train:dv-ab12cd34-c0ffee00']

        // and where it is set, it may hold the shared library's commit: still the checkout's
        setUp()
        h.env.BRANCH_NAME = 'data/batch-2'
        h.env.GIT_COMMIT = LIBRARY_COMMIT
        answerMlops(answers())
        assert h.run('mlopsDataLine', [mode: 'cluster']).image.tag == 'dv-ab12cd34-c0ffee00'
        assert h.shCalls.every { !it.env.MLOPS_IMAGE_REFS || !it.env.MLOPS_IMAGE_REFS.contains('11111111') }
    }

    void testImageWithoutACommitUsesTheWorkspaceHeadNotEnvGitCommit() {
        h.env.GIT_COMMIT = LIBRARY_COMMIT
        h.shHandler = { Map c -> c.label == 'commit of the workspace' ? [stdout: "${CHECKOUT_COMMIT}\n"] : [:] }
        Map r = h.run('mlopsImage', [image: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.', dataVersion: 'dv-1'])
        assert r.commit == CHECKOUT_COMMIT && r.tag == 'dv-1-c0ffee00'
    }

    // ------------------------------------------------------------------ pull-request builds

    void pullRequestBuild() {
        h.env.BRANCH_NAME = 'PR-12'
        h.env.CHANGE_ID = '12'
        h.env.CHANGE_BRANCH = 'data/batch-2'
        h.env.CHANGE_TARGET = 'main'
        h.env.JOB_NAME = 'taxi-fare/pipeline/PR-12'
    }

    void testPullRequestBuildWorksForItsBranchAndUpdatesItsPullRequest() {
        pullRequestBuild()
        remoteBranches[CHECKOUT_COMMIT] = ['origin/PR-12']     // head strategy: the checkout is the PR's head commit
        answerMlops(answers())
        Map r = h.run('mlopsDataLine', [mode: 'cluster'])
        assert r.branch == 'data/batch-2' && r.pullRequestBuild
        assert commands() == ['config validate', 'data status', 'data push', 'config show', 'pr open']
        Map pr = h.mlopsCalls.find { it.command == 'pr open' }
        assert pr.params == [branch: 'data/batch-2', base: 'main']            // never from 'PR-12'
        assert r.image.tag == 'dv-ab12cd34-c0ffee00'
        assert r.skipped.Experiment == 'pull-request build'
        assert h.callsTo('lock').isEmpty() && h.callsTo('build').isEmpty()
    }

    void testPullRequestMergedWithItsTargetSkipsTheImageAndThePullRequestWithTheReason() {
        pullRequestBuild()
        // merge strategy: checkout returns Jenkins' local merge commit, which no remote branch contains
        answerMlops(answers())
        Map r = h.run('mlopsDataLine', [mode: 'cluster'])
        assert commands() == ['config validate', 'data status', 'data push']
        assert r.image == null && r.pullRequest == null
        assert r.skipped['Training image'].contains("Jenkins' merge of the pull request")
        assert r.skipped['Pull request'] == r.skipped['Training image']
        assert h.log.toString().contains('skipped: the checkout is Jenkins\' merge')
    }

    void testPullRequestStepNeverOpensFromPRN() {
        answerMlops([:])
        h.env.BRANCH_NAME = 'PR-3'
        expectError("mlopsPullRequest: branch 'PR-3' is Jenkins' name of a pull request") { h.run('mlopsPullRequest') }
        pullRequestBuild()
        h.run('mlopsPullRequest')
        assert lastParams() == [branch: 'data/batch-2', base: 'main']
    }

    // ------------------------------------------------------------------ writeJSON is json-lib

    void testTheHarnessWriteJsonIsJsonLib() {
        int n = 2
        String text = h.invokeStep('writeJSON', [[returnText: true, json: [rev: "HEAD~${n}", top: 'x']]] as Object[])
        Map doc = new JsonSlurper().parseText(text)
        assert doc.top == 'x'
        assert doc.rev instanceof Map && doc.rev.valueCount == 1 && doc.rev.strings == ['HEAD~', '']
    }

    void testNestedGStringsReachTheCliAsStrings() {
        answerMlops([:])
        int n = 1
        h.run('mlopsCli', [command: 'data version', params: [rev: "HEAD~${n}", nested: [deeper: ["v${n}"]]]])
        File file = new File(h.shCalls[0].env.MLOPS_PARAMS_FILE)
        assert new JsonSlurper().parse(file) == [rev: 'HEAD~1', nested: [deeper: ['v1']]]
    }

    // ------------------------------------------------------------------ secrets in error text

    /** A stand-in mlops that fails, printing the bound secrets, and records what each call would send. */
    File leakyCli() {
        File bin = new File(h.workspace.path + '@bin')
        bin.mkdirs()
        new File(bin, 'mlops').text = '''#!/bin/sh
cp "$MLOPS_PARAMS_FILE" "$FAKE_BIN/params-$(echo "$*" | tr ' ' '-')"
case "$*" in
  "config validate --json"|"data status --json") echo '{"data_version": "dv-ab12cd34", "changed": true}'; exit 0 ;;
  "notify failure --json") echo "mlops: error: Slack said no to $SLACK_BOT_TOKEN" >&2; exit 1 ;;
esac
echo "mlops: error: refused credentials $AWS_SECRET_ACCESS_KEY / $GITHUB_TOKEN / $SLACK_BOT_TOKEN" >&2
exit 1
'''
        new File(bin, 'mlops').setExecutable(true)
        h.realSh = true
        h.env.PATH = "${bin.path}:${System.getenv('PATH')}".toString()
        h.env.FAKE_BIN = bin.path
        h.env.MLOPS_BIN = new File(bin, 'mlops').path
        ['mlops-github-token', 'mlops-slack'].each { h.credentials[it] = CANARY }
        h.credentials['mlops-dvc-s3'] = [username: 'AKIAEXAMPLE', password: CANARY]
        return bin
    }

    void testBoundSecretsAreMaskedInErrorsEchoesAndTheSlackNotice() {
        File bin = leakyCli()
        h.env.BRANCH_NAME = 'main'
        String message = expectError('mlops line data failed: refused credentials') {
            h.run('mlopsDataLine', [mode: 'cluster', agent: 'none', checkout: false, install: 'path'])
        }
        assert !message.contains(CANARY) && message.contains('****')
        String notice = new File(bin, 'params-notify-failure---json').text
        assert notice.contains('data line failed in stage Experiment: mlops line data failed: refused credentials ****')
        assert !notice.contains(CANARY)
        assert !h.log.toString().contains(CANARY)       // the WARNING echoed outside withCredentials too
        assert h.log.toString().contains('WARNING: notice not sent: mlops notify failure failed: Slack said no to ****')
        assert !"${h.currentBuild.description}".contains(CANARY)
        bin.deleteDir()
    }

    void testMaskingKeepsTheRestOfTheMessageAndNamesOnlyVariables() {
        File bin = leakyCli()
        h.env.BRANCH_NAME = 'data/x'
        expectError('mlops pr open failed: refused credentials  / **** /') { h.run('mlopsPullRequest') }
        Map sh = h.shCalls.find { it.env.MLOPS_COMMAND == 'pr open' }
        assert sh.env.MLOPS_SECRET_VARS == 'GITHUB_TOKEN'        // names, never values
        bin.deleteDir()
    }

    // ------------------------------------------------------------------ timeouts

    void testJenkinsTimeoutsOutlastTheCliOwnLimit() {
        h.credentials['mlops-kubeconfig'] = 'kube'
        answerMlops('experiment submit': [metadata: [name: 'e1']])
        h.run('mlopsExperiment', [mode: 'cluster', timeoutMinutes: 30])
        Map wait = h.mlopsCalls.find { it.command == 'experiment wait' }
        int attempts = h.callsTo('retry').find { it.args[0] > 1 }.args[0]
        int jenkins = h.callsTo('timeout')[0].args[0].time
        assert wait.params.timeout_minutes == 30 && attempts == 3
        assert jenkins > attempts * 30 && jenkins == 3 * 30 + 5

        h.calls.clear()
        h.run('mlopsDeploy', [command: 'wait', timeoutMinutes: 10, params: [revision: 'abc1234']])
        Map deployWait = h.mlopsCalls[-1]
        assert deployWait.params.timeout_minutes == 10
        assert h.callsTo('timeout')[0].args[0] == [time: 3 * 10 + 5, unit: 'MINUTES']
        h.calls.clear()
        h.run('mlopsDeploy', [command: 'wait', params: [rollback_on_failure: true, timeout_minutes: 7.5]])
        assert h.callsTo('timeout')[0].args[0].time == 8 + 5        // one attempt (a rollback is not repeated)
    }

    // ------------------------------------------------------------------ concurrency

    void testTheExperimentOnMainRunsUnderALockPerDataVersion() {
        h.env.JOB_NAME = 'taxi-fare/pipeline/main'
        Map held = [:]
        Map a = answers()
        a['line data'] = { Map c -> held.locks = new ArrayList(h.locks); [exitCode: 0, json: answers()['line data']] }
        answerMlops(a)
        h.run('mlopsDataLine', [mode: 'cluster'])
        assert held.locks == ['mlops-data taxi-fare/pipeline dv-ab12cd34']
        assert h.locks.isEmpty()
        // the second merge of the same data waits for the lock, then the CLI reports it unchanged: no second Experiment
        setUp()
        h.env.JOB_NAME = 'taxi-fare/pipeline/main'
        Map b = answers()
        b['line data'] = [status: 'unchanged', data_version: 'dv-ab12cd34']
        answerMlops(b)
        Map r = h.run('mlopsDataLine', [mode: 'cluster', lockResource: ''])
        assert h.callsTo('lock').isEmpty() && r.line.status == 'unchanged' && h.callsTo('build').isEmpty()
    }

    // ------------------------------------------------------------------ aborts

    void testAnAbortIsReportedAsAnAbortNotAFailureNotice() {
        Map a = answers()
        a['line data'] = { Map c -> throw new FlowInterruptedException('ABORTED', new CauseOfInterruption.UserInterruption()) }
        answerMlops(a)
        try {
            h.run('mlopsDataLine', [mode: 'cluster'])
            assert false: 'the abort was swallowed'
        } catch (FlowInterruptedException expected) {
            assert expected.message == null
        }
        assert !commands().contains('notify failure')
        assert h.currentBuild.description == "data dv-ab12cd34 · image registry.example.com/ml/train:dv-ab12cd34-${h.checkoutCommit.take(8)} - aborted in Experiment"
        assert h.mlopsCalls.count { it.command == 'line data' } == 1      // not retried either
        assert !h.log.toString().contains(': null')
    }

    void testATimeoutIsAFailureNoticeNamingIt() {
        Map a = answers()
        a['line data'] = { Map c -> throw new FlowInterruptedException('ABORTED', new TimeoutStepExecution.ExceededTimeout()) }
        answerMlops(a)
        try {
            h.run('mlopsDataLine', [mode: 'cluster'])
            assert false
        } catch (FlowInterruptedException expected) {
            assert expected.causes[0] instanceof TimeoutStepExecution.ExceededTimeout
        }
        Map notice = h.mlopsCalls[-1]
        assert notice.command == 'notify failure'
        assert notice.params.message.startsWith('data line timed out in stage Experiment: ')
        assert !notice.params.message.endsWith('null')
    }

    void testDeployLineAbortNeitherRollsBackNorNotifies() {
        Map a = ['model train': [run_id: 'r1'], 'model register': [promoted: true, candidate: [version: '4'], name: 'm'],
                 'deploy push': [commit: 'abc1234'],
                 'deploy wait': { Map c -> throw new FlowInterruptedException('ABORTED', new CauseOfInterruption.UserInterruption()) }]
        answerMlops(a)
        try {
            h.run('mlopsDeployLine', [mode: 'cluster'])
            assert false
        } catch (FlowInterruptedException expected) {
            assert expected.result == 'ABORTED'
        }
        assert !commands().contains('model rollback') && !commands().contains('notify failure')
        assert h.currentBuild.description.endsWith(' - aborted in Argo CD sync')
    }

    void testANoticeThatMayFailStillLetsAnAbortThrough() {
        h.mlopsHandler = { Map c -> throw new FlowInterruptedException('ABORTED', new CauseOfInterruption.UserInterruption()) }
        try {
            h.run('mlopsNotify', [command: 'failure', message: 'x', failOnError: false])
            assert false: 'mlopsNotify swallowed the abort'
        } catch (FlowInterruptedException expected) {
            assert !h.log.toString().contains('WARNING: notice not sent')
        }
    }

    // ------------------------------------------------------------------ skipped stages

    void testSkippedStagesAreMarkedSkippedForConditional() {
        h.env.BRANCH_NAME = 'feature/x'
        answerMlops(answers(false))
        Map r = h.run('mlopsDataLine', [mode: 'cluster'])
        List<String> skipped = ['Push data', 'Training image', 'Pull request', 'Experiment', 'Deploy line']
        assert PipelineHarness.skippedForConditional == skipped
        assert r.skipped.keySet() as List == skipped
        assert h.stages == ['Checkout', 'Setup', 'Data status'] + skipped

        // without pipeline-model-definition the library still loads and runs; the stages just print why
        PipelineHarness.skippedForConditional.clear()
        PipelineHarness bare = new PipelineHarness(ROOT, null, false)
        try {
            credentials(bare)
            bare.env.BRANCH_NAME = 'feature/x'
            bare.shHandler = { Map c -> shAnswer(c) }
            bare.mlopsHandler = { Map c -> [exitCode: 0, json: answers(false)[c.command] ?: [:]] }
            bare.run('mlopsDataLine', [mode: 'cluster'])
            assert bare.log.toString().count('skipped: ') == 5
            assert PipelineHarness.skippedForConditional.isEmpty()
        } finally {
            bare.cleanup()
        }
    }

    // ------------------------------------------------------------------ docker credentials

    /** A stand-in docker that, like the real CLI, stores a login in $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
    File fakeDocker(boolean buildFails) {
        File bin = new File(h.workspace.path + '@bin')
        bin.mkdirs()
        new File(bin, 'docker').text = """#!/bin/sh
config="\${DOCKER_CONFIG:-\$HOME/.docker}"
case "\$1" in
  login) cat >/dev/null; mkdir -p "\$config"; echo '{"auths": {"x": {"auth": "secret"}}}' > "\$config/config.json"; echo "\$config" > "\$FAKE_BIN/config-used" ;;
  build) ${buildFails ? 'exit 1' : 'exit 0'} ;;
esac
"""
        new File(bin, 'docker').setExecutable(true)
        File home = new File(h.workspace.path + '@home')
        home.mkdirs()
        h.realSh = true
        h.env.PATH = "${bin.path}:${System.getenv('PATH')}".toString()
        h.env.HOME = home.path
        h.env.FAKE_BIN = bin.path
        h.credentials['mlops-registry'] = [username: 'robot', password: 'pw']
        return bin
    }

    void testBuildkitReceivesTheDocumentedArgumentsAndItsOwnDockerConfig() {
        // a stand-in buildctl-daemonless.sh records its argv and the config.json it would authenticate with
        File bin = new File(h.workspace.path + '@bin')
        bin.mkdirs()
        new File(bin, 'buildctl-daemonless.sh').text = '''#!/bin/sh
for a in "$@"; do printf '%s\\n' "$a"; done > "$FAKE_BIN/argv"
cp "$DOCKER_CONFIG/config.json" "$FAKE_BIN/config.json"
echo "$DOCKER_CONFIG" > "$FAKE_BIN/config-used"
'''
        new File(bin, 'buildctl-daemonless.sh').setExecutable(true)
        h.realSh = true
        h.env.PATH = "${bin.path}:${System.getenv('PATH')}".toString()
        h.env.FAKE_BIN = bin.path
        h.credentials['mlops-registry'] = '{"auths": {"registry.example.com": {"auth": "cm9ib3Q6cHc="}}}'
        h.run('mlopsImage', [image: 'registry.example.com/ml/train', dockerfile: 'docker/train.Dockerfile', context: '.',
                             dataVersion: 'dv-1', commit: CHECKOUT_COMMIT])
        assert new File(bin, 'argv').readLines() == [
            'build', '--frontend', 'dockerfile.v0', '--local', 'context=.', '--local', 'dockerfile=docker',
            '--opt', 'filename=train.Dockerfile', '--output', 'type=image,"name=registry.example.com/ml/train:dv-1-c0ffee00",push=true']
        assert new File(bin, 'config.json').text == h.credentials['mlops-registry']
        assert !new File(new File(bin, 'config-used').text.trim()).exists()
        bin.deleteDir()
    }

    void testDockerLoginUsesAnIsolatedConfigThatIsRemovedAfterTheBuild() {
        [false, true].each { boolean buildFails ->
            setUp()
            File bin = fakeDocker(buildFails)
            Map image = [builder: 'docker', image: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.',
                         dataVersion: 'dv-1', commit: CHECKOUT_COMMIT, retries: 0]
            try {
                h.run('mlopsImage', image)
                assert !buildFails
            } catch (PipelineError e) {
                assert buildFails && e.message.contains('exit code 1')
            }
            File used = new File(new File(bin, 'config-used').text.trim())
            assert used.path.startsWith(h.workspace.path + '@tmp/mlops-docker-config-')
            assert !used.exists(): "registry credentials left in ${used}"
            assert !new File(h.env.HOME, '.docker').exists()
            bin.deleteDir()
            new File(h.env.HOME).deleteDir()
            tearDown()
        }
    }
}
