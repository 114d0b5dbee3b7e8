import harness.PipelineError
import harness.StepTestCase

/**
 * Injection payloads in every string option of every step and in the branch name, with the `sh`
 * scripts run for real (a stand-in `mlops` and `docker` on PATH), and a canary secret in every
 * credential: nothing may execute, reach a script string, or show up in any output.
 */
class SecurityTest extends StepTestCase {

    static final String CANARY = 'canary-S3CRET-7f3a9'
    static final String PAYLOAD = 'x$(touch pwned1)`touch pwned2`\'; touch pwned3; \'"; touch pwned4; "\ntouch pwned5'
    // the steps' options of type string (their default is a string or null)
    static final Map<String, List<String>> STRING_OPTIONS = stringOptions()

    File bin

    @Override
    void setUp() {
        super.setUp()
        bin = new File(h.workspace.path + '@bin')
        bin.mkdirs()
        Map doc = [changed: true, data_version: 'dv-0123abcd', status: 'completed', experiment: 'exp-1',
                   metadata: [name: 'exp-1'], run_id: 'run-1', promoted: true, reason: 'better', name: 'taxi-fare',
                   candidate: [version: '3'], config: [image: [name: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.']]]
        new File(bin, 'doc.json').text = groovy.json.JsonOutput.toJson(doc)
        // the stand-ins print a document / do nothing; they never echo their environment
        new File(bin, 'mlops').text = '#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_BIN/calls.log"\ncat "$FAKE_BIN/doc.json"\n'
        new File(bin, 'docker').text = '#!/bin/sh\nprintf "docker %s\\n" "$1" >> "$FAKE_BIN/calls.log"\n'
        new File(bin, 'mlops').setExecutable(true)
        new File(bin, 'docker').setExecutable(true)
        h.realSh = true
        h.env.PATH = "${bin.path}:${System.getenv('PATH')}".toString()
        h.env.FAKE_BIN = bin.path
        h.env.MLOPS_BIN = new File(bin, 'mlops').path
        ['mlops-dvc-s3', 'mlops-registry', 'mlops-github-token', 'mlops-slack', 'mlops-kubeconfig', 'mlflow-auth'].each {
            h.credentials[it] = [username: "user-${CANARY}".toString(), password: CANARY]
        }
        ['mlops-github-token', 'mlops-slack', 'mlops-kubeconfig'].each { h.credentials[it] = CANARY }
    }

    @Override
    void tearDown() {
        super.tearDown()
        bin?.deleteDir()
    }

    static Map<String, List<String>> stringOptions() {
        Map<String, List<String>> out = [:]
        new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') && it.name != 'mlopsOptions.groovy' }.each { File f ->
            String block = (f.text =~ /(?s)Map defaults = \[(.*?)\n    \]/)[0][1]
            out[f.name - '.groovy'] = block.readLines().collect { (it =~ /^\s+(\w+): ('[^']*'|null),/) }
                .findAll { it.find() }.collect { it.group(1) }
        }
        return out
    }

    private void runIgnoringPipelineErrors(String step, Map config) {
        try {
            if (takesBlock(step)) {
                h.run(step, config, { -> h.run('mlopsCli', [command: 'data status']) })
            } else {
                h.run(step, config)
            }
        } catch (PipelineError ignored) {
            // rejecting the payload is a fine outcome; executing it is not
        }
    }

    private void assertNothingLeakedOrRan(String what) {
        List<File> pwned = []
        [h.workspace, new File(h.workspace.path + '@tmp'), bin].findAll { it.directory }.each { File d ->
            d.eachFileRecurse { if (it.name.startsWith('pwned')) { pwned << it } }
        }
        pwned += new File('.').listFiles().findAll { it.name.startsWith('pwned') }
        assert pwned.isEmpty(): "${what}: payload executed: ${pwned}"
        h.shCalls.each { Map c ->
            assert !c.script.contains('pwned'): "${what}: payload reached a script: ${c.script}"
            assert !c.script.contains(CANARY) && !"${c.label}".contains(CANARY)
        }
        assert !h.log.toString().contains(CANARY): "${what}: secret in the build log:\n${h.log}"
        assert !"${h.currentBuild.description}".contains(CANARY)
        File tmp = new File(h.workspace.path + '@tmp')
        (tmp.directory ? tmp.listFiles() as List : []).each { File f ->
            if (f.file && !f.path.contains('secretFiles')) {
                assert !f.text.contains(CANARY): "${what}: secret written to ${f}"
            }
        }
    }

    void testEveryStringOptionOfEveryStepWithPayload() {
        assert STRING_OPTIONS.keySet().containsAll(['mlopsCli', 'mlopsData', 'mlopsImage', 'mlopsPullRequest', 'mlopsExperiment',
                                                    'mlopsModel', 'mlopsDeploy', 'mlopsNotify', 'mlopsDataLine', 'mlopsDeployLine'])
        int runs = 0
        STRING_OPTIONS.each { String step, List<String> options ->
            Map base = [mlopsCli: [command: 'data status'], mlopsImage: [builder: 'docker', commit: 'abcdef1234567'],
                        mlopsDataLine: [mode: 'cluster', imageBuilder: 'docker', agent: 'none'],
                        mlopsDeployLine: [mode: 'cluster', agent: 'none', mlflowCredentialsId: 'mlflow-auth']][step] ?: [:]
            options.each { String option ->
                h.shCalls.clear()
                h.env.BRANCH_NAME = 'feature/data'
                runIgnoringPipelineErrors(step, base + [(option): PAYLOAD])
                assertNothingLeakedOrRan("${step}(${option})")
                runs++
            }
        }
        assert runs > 50
        assert new File(bin, 'calls.log').text.contains('data status')   // the stand-in really ran
    }

    void testBranchNamePayloadThroughTheDataLine() {
        h.env.BRANCH_NAME = PAYLOAD
        h.run('mlopsDataLine', [mode: 'cluster', imageBuilder: 'docker', agent: 'none'])
        String calls = new File(bin, 'calls.log').text
        assert calls.contains('pr open --json')
        assert calls.contains('docker build') && calls.contains('docker login')
        // the branch reached the CLI only inside the parameter file, as data
        Map pr = h.shCalls.find { it.env.MLOPS_COMMAND == 'pr open' }
        assert new groovy.json.JsonSlurper().parse(new File(pr.env.MLOPS_PARAMS_FILE)).branch == PAYLOAD
        assert pr.env.GITHUB_TOKEN == CANARY                 // bound for the call that needs it ...
        assert h.shCalls.find { it.env.MLOPS_COMMAND == 'data status' }.env.GITHUB_TOKEN == null   // ... and only there
        assertNothingLeakedOrRan('BRANCH_NAME')
    }

    void testSecretsOfEveryCredentialStayOutOfOutputOnFailure() {
        // a failing CLI whose error names the parameters: the failure paths must not leak either
        new File(bin, 'mlops').text = '#!/bin/sh\necho "mlops: error: something failed" >&2\nexit 1\n'
        h.env.BRANCH_NAME = 'main'
        [['mlopsDataLine', [mode: 'cluster', agent: 'none']], ['mlopsDeployLine', [mode: 'cluster', agent: 'none']]].each { List c ->
            expectError('failed: something failed') { h.run(c[0], c[1]) }
        }
        assertNothingLeakedOrRan('failure paths')
        assert h.callsTo('withCredentials').size() >= 2
    }
}
