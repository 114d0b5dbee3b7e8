import harness.StepTestCase

/** mlopsCli: the exact sh call, environment and parameter file; exit-code handling; retries. */
class MlopsCliTest extends StepTestCase {

    void testRunsFixedScriptWithValuesInEnvironmentAndParamsFile() {
        answerMlops('data status': [data_version: 'dv-1', changed: true])
        Map result = h.run('mlopsCli', [command: 'data status', params: [rev: 'HEAD', force: false]])

        assert result == [data_version: 'dv-1', changed: true]
        assert h.shCalls.size() == 1
        Map sh = h.shCalls[0]
        assert sh.returnStatus
        assert sh.label == 'mlops data status'
        assert sh.script.contains('"$MLOPS_BIN" $MLOPS_COMMAND --json 2>&1 >"$MLOPS_RESULT"')
        assert sh.env.MLOPS_BIN == 'mlops'
        assert sh.env.MLOPS_COMMAND == 'data status'
        assert sh.env.MLOPS_PARAMS_FILE.startsWith(h.workspace.path + '@tmp/mlops-data-status-')
        assert h.mlopsCalls[0].params == [rev: 'HEAD', force: false]
        assert !sh.env.containsKey('MLOPS_CONFIG') && !sh.env.containsKey('MLOPS_PROFILE')
    }

    void testConfigFileProfileAndBinFromSetup() {
        answerMlops([:])
        h.env.MLOPS_BIN = '/opt/venv/bin/mlops'
        h.run('mlopsCli', [command: 'config validate', configFile: 'ml/mlops.yaml', profile: 'cluster'])
        Map env = h.shCalls[0].env
        assert env.MLOPS_BIN == '/opt/venv/bin/mlops'
        assert env.MLOPS_CONFIG == 'ml/mlops.yaml'
        assert env.MLOPS_PROFILE == 'cluster'
        assert h.mlopsCalls[0].params == [:]
    }

    void testExitTwoIsBadInputWithTheCliMessageAndIsNotRetried() {
        h.mlopsHandler = { Map c -> [exitCode: 2, stderr: 'loading\nmlops: error: katib/x.yaml:3: spec.algorithm: unknown\n'] }
        String msg = expectError('mlops experiment validate: bad input: katib/x.yaml:3: spec.algorithm: unknown') {
            h.run('mlopsCli', [command: 'experiment validate', params: [file: 'katib/x.yaml'], retries: 3])
        }
        assert !msg.contains('mlops: error:')
        assert h.mlopsCalls.size() == 1
    }

    void testExitOneFailsWithTheMessageAfterRetries() {
        h.mlopsHandler = { Map c -> [exitCode: 1, stderr: 'mlops: error: remote unreachable\n'] }
        expectError('mlops data push failed: remote unreachable') {
            h.run('mlopsCli', [command: 'data push', retries: 2])
        }
        assert h.mlopsCalls.size() == 3
        assert h.callsTo('retry')[0].args[0] == 3
    }

    void testRetrySucceedsOnSecondAttempt() {
        int n = 0
        h.mlopsHandler = { Map c -> ++n == 1 ? [exitCode: 1, stderr: 'mlops: error: timeout\n'] : [exitCode: 0, json: [pushed_files: 2]] }
        assert h.run('mlopsCli', [command: 'data push', retries: 1]) == [pushed_files: 2]
        assert h.mlopsCalls.size() == 2
    }

    void testFailOnErrorFalseReturnsTheDocumentAndError() {
        h.mlopsHandler = { Map c -> [exitCode: 1, json: [status: 'failed', experiment: 'e1'], stderr: 'mlops: error: 3 trials failed\n'] }
        Map r = h.run('mlopsCli', [command: 'line data', failOnError: false])
        assert r == [status: 'failed', experiment: 'e1', mlopsExitCode: 1, mlopsError: '3 trials failed']
    }

    void testOtherExitCodesNameTheCode() {
        h.mlopsHandler = { Map c -> [exitCode: 127, stderr: 'sh: 1: mlops: not found\n'] }
        expectError(['mlops data status exited with code 127', 'mlops: not found']) {
            h.run('mlopsCli', [command: 'data status'])
        }
    }

    void testSuccessWithoutJsonIsAnError() {
        h.mlopsHandler = { Map c -> [exitCode: 0] }
        expectError('mlops data status printed no JSON result') {
            h.run('mlopsCli', [command: 'data status'])
        }
    }

    void testCommandMustBePlainWords() {
        ['data status; rm -rf x', 'data $(id)', 'Data Status', '', 'a b c d', 'data\nstatus'].each { String bad ->
            expectError("mlopsCli: option 'command'") {
                h.run('mlopsCli', [command: bad])
            }
        }
        assert h.shCalls.isEmpty()
    }

    void testUnknownOptionAndTypes() {
        expectError(["mlopsCli: unknown option 'retry'", 'known options: command, configFile, failOnError, label, params, profile, retries']) {
            h.run('mlopsCli', [command: 'data status', retry: 1])
        }
        expectError("mlopsCli: option 'retries' must be a whole number >= 0 (got 'two')") {
            h.run('mlopsCli', [command: 'data status', retries: 'two'])
        }
        expectError("mlopsCli: option 'params' must be a map") {
            h.run('mlopsCli', [command: 'data status', params: 'x'])
        }
        expectError("mlopsCli: option 'command' is required") {
            h.run('mlopsCli')
        }
    }
}
