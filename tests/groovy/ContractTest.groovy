import harness.PipelineHarness
import harness.SkipTest
import harness.StepTestCase

/**
 * The data line through the Groovy steps with a real `sh` and the installed `mlops`, in a scratch
 * git + DVC copy of examples/taxi-fare: what the steps ask for is what the CLI accepts.
 */
class ContractTest extends StepTestCase {

    /** One prepared git + DVC project per JVM; each test works on its own copy. */
    static File template

    File project
    String path

    @Override
    void setUp() {
        File venvBin = new File(ROOT, '.venv/bin')
        path = (venvBin.directory ? venvBin.path + ':' : '') + System.getenv('PATH')
        String mlops = path.tokenize(':').collect { new File(it, 'mlops') }.find { it.canExecute() }?.path
        if (!mlops) {
            throw new AssertionError((Object) "no mlops on PATH or in .venv/bin: install this package (make setup)")
        }
        String help = runCommand([mlops, 'line', '--help'], ROOT)
        if (!(help =~ /(?m)^\s+data\s/)) {
            throw new SkipTest("`mlops line --help` has no `data` command yet: ${help.readLines().take(1)}")
        }
        if (template == null) {
            template = new File(File.createTempDir('mlops-contract-template-', ''), 'taxi-fare')
            runCommand([new File(ROOT, 'examples/prepare_demo.sh').path, template.path], ROOT)
            addShutdownHook { template.parentFile.deleteDir() }
        }
        project = new File(File.createTempDir('mlops-contract-', ''), 'taxi-fare')
        runCommand(['cp', '-a', template.path, project.path], ROOT)
        h = new PipelineHarness(ROOT, project)
        h.realSh = true
        h.env.PATH = path
        h.env.HOME = System.getenv('HOME')
        h.env.GIT_COMMIT = runCommand(['git', 'rev-parse', 'HEAD'], project).trim()
        h.env.remove('MLOPS_BIN')
    }

    @Override
    void tearDown() {
        h?.cleanup()
        project?.parentFile?.deleteDir()
    }

    private String runCommand(List<String> argv, File dir) {
        ProcessBuilder pb = new ProcessBuilder(argv).directory(dir).redirectErrorStream(true)
        pb.environment().PATH = path
        Process p = pb.start()
        String out = p.inputStream.getText('UTF-8')
        int code = p.waitFor()
        assert code == 0: "${argv.join(' ')} exited ${code}:\n${out}"
        return out
    }

    private List<String> mlopsCommands() {
        h.shCalls.findAll { it.env.MLOPS_COMMAND }.collect { it.env.MLOPS_COMMAND }
    }

    void testDataLineOnMainRunsTheExperimentOnceAndHandsOver() {
        h.env.BRANCH_NAME = 'main'
        Map first = h.run('mlopsDataLine', [mode: 'local', checkout: false, install: 'path'])

        assert h.stages == ['Checkout', 'Setup', 'Data status', 'Push data', 'Training image', 'Pull request',
                            'Experiment', 'Deploy line']
        assert mlopsCommands() == ['config validate', 'data status', 'line data']
        assert first.changed
        assert first.dataVersion ==~ /dv-[0-9a-f]+/
        assert first.line.status == 'completed'
        assert first.line.data_version == first.dataVersion
        assert first.line.experiment
        assert new File(project, ".mlops/experiments/${first.line.experiment}/experiment.json").file
        assert h.env.MLOPS_BIN.endsWith('/mlops')
        Map build = h.callsTo('build')[0].args[0]
        assert build.job == '../deploy' && build.wait == false
        assert build.parameters[0].name == 'EXPERIMENT' && build.parameters[0].value == first.line.experiment
        assert h.currentBuild.description.startsWith("data ${first.dataVersion} · experiment ${first.line.experiment} (completed)")
        // the parameters really went through the JSON file the CLI read
        Map lineCall = h.shCalls.find { it.env.MLOPS_COMMAND == 'line data' }
        assert new File(lineCall.env.MLOPS_PARAMS_FILE).text == '{"local":true,"force":false}'

        // the same data again: nothing to do, no hand-over
        h.shCalls.clear()
        h.calls.clear()
        Map second = h.run('mlopsDataLine', [mode: 'local', checkout: false, install: 'path'])
        assert !second.changed
        assert second.line == null
        assert mlopsCommands() == ['config validate', 'data status']
        assert h.callsTo('build').isEmpty()
        assert h.currentBuild.description == "data ${first.dataVersion}"
    }

    void testDataLineOnABranchPushesTheData() {
        h.env.BRANCH_NAME = 'feature/new-data'
        Map result = h.run('mlopsDataLine', [mode: 'local', checkout: false, install: 'path', deployJob: ''])
        assert result.changed
        assert mlopsCommands() == ['config validate', 'data status', 'data push']
        assert result.line == null
        assert h.log.toString().contains('skipped: local mode')
        assert h.callsTo('withCredentials').isEmpty()    // local mode binds nothing unless asked
    }

    void testBadInputFromTheRealCliBecomesAClearError() {
        h.env.BRANCH_NAME = 'main'
        new File(project, 'mlops.yaml').append('\nbogus_key: 1\n')
        String msg = expectError('mlops config validate: bad input:') {
            h.run('mlopsDataLine', [mode: 'local', checkout: false, install: 'path'])
        }
        assert msg.contains('bogus_key')
        // the failure notice was attempted and its own failure did not hide the real error
        assert mlopsCommands()[-1] == 'notify failure'
    }
}
