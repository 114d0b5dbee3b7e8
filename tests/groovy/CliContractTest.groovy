import groovy.json.JsonSlurperClassic
import harness.PipelineError
import harness.PipelineHarness
import harness.StepTestCase

/**
 * One parameter contract between the steps and the CLI. The contract is generated from the real click
 * commands (`python -m pyhelpers.contract`, never written by hand); every vars/ step is run with every
 * value of its choice options and with its other options set, on the main branch, a branch and a
 * pull-request build, and every `mlops` call it makes is checked against the contract: the command exists,
 * every key of the parameter file (MLOPS_PARAMS_FILE, as the CLI reads it) is a parameter of that command
 * with a value of its type, required parameters are there, and the runner's command-line flags and
 * environment variables are ones the CLI has. A step sending `head` to `mlops pr open` fails here.
 */
class CliContractTest extends StepTestCase {

    static Map contract

    /** Steps that never call mlops themselves (their sh is checked elsewhere) or only configure others. */
    static final List<String> NOT_CALLING = ['mlopsOptions', 'mlopsSetup', 'mlopsAgent', 'mlopsCredentials', 'mlopsStage']

    /** Values that pass the steps' own validation for options whose default is a string or null. */
    static final Map<String, Object> SAMPLES = [
        commit: 'abcdef0123456789abcdef0123456789abcdef01', image: 'registry.example.com/ml/sample', version: '3',
        dataVersion: 'dv-0123abcd', file: 'katib/experiment.yaml', name: 'sample-exp', experiment: 'sample-exp',
        runId: 'run-1', podTemplate: 'mlops/pod-template-kaniko.yaml', container: 'builder', branch: 'data/sample',
        base: 'main', baseRevision: 'origin/main', message: 'sample failure', lockResource: 'sample-lock',
        configFile: 'mlops.yaml', profile: 'cluster', label: 'sample label', agentLabel: 'linux',
    ]

    static final Map<String, Object> ANSWER = [
        changed: true, changed_from_base: true, data_version: 'dv-0123abcd', status: 'completed', experiment: 'sample-exp',
        best_trial: [name: 'sample-exp-0001'], metadata: [name: 'sample-exp'], run_id: 'run-1', promoted: true,
        reason: 'better', name: 'taxi-fare', candidate: [version: '3'], commit: 'c0ffee1234567',
        config: [image: [name: 'registry.example.com/ml/train', dockerfile: 'Dockerfile', context: '.']],
    ]

    static Map loadContract() {
        if (contract == null) {
            String python = System.getenv('MLOPS_PYTHON') ?:
                (new File(ROOT, '.venv/bin/python').canExecute() ? new File(ROOT, '.venv/bin/python').path : 'python3')
            Process p = new ProcessBuilder([python, '-m', 'pyhelpers.contract']).directory(ROOT).start()
            StringBuffer err = new StringBuffer()
            Thread reader = p.consumeProcessErrorStream(err)
            String out = p.inputStream.getText('UTF-8')
            int code = p.waitFor()
            reader.join()
            assert code == 0: "python -m pyhelpers.contract exited ${code}: ${err}"
            contract = (Map) new JsonSlurperClassic().parseText(out)
        }
        return contract
    }

    // ------------------------------------------------------------------ the checker

    /** Problems of one recorded mlops call against the contract (empty when it conforms). */
    static List<String> problems(Map call) {
        Map commands = loadContract().commands
        Map cmd = commands[call.command]
        if (cmd == null) {
            return ["`mlops ${call.command}` is not a command of the CLI".toString()]
        }
        List<String> out = []
        Map params = (Map) (call.params ?: [:])
        params.each { String key, Object value ->
            Map p = cmd.params[key]
            if (p == null) {
                out << "`mlops ${call.command}` has no parameter '${key}' (it has: ${cmd.params.keySet().sort().join(', ')})".toString()
            } else {
                String bad = typeProblem(p, value)
                if (bad) {
                    out << "`mlops ${call.command}` parameter '${key}' must be ${bad} (got ${value} of ${value?.getClass()?.simpleName})".toString()
                }
            }
        }
        cmd.params.findAll { k, p -> p.required && !params.containsKey(k) }.each { k, p ->
            out << "`mlops ${call.command}` needs parameter '${k}'".toString()
        }
        Map rootEnv = loadContract().root.env
        ['MLOPS_PARAMS_FILE', 'MLOPS_CONFIG', 'MLOPS_PROFILE'].findAll { call.env?.containsKey(it) }.each {
            if (!rootEnv.containsKey(it)) {
                out << "the CLI reads no environment variable ${it}".toString()
            }
        }
        runnerFlags().findAll { !(it in cmd.flags) }.each {
            out << "`mlops ${call.command}` has no flag ${it} (the runner script passes it)".toString()
        }
        return out
    }

    static String typeProblem(Map p, Object value) {
        switch (p.type) {
            case 'boolean':
                return value instanceof Boolean ? null : 'true or false'
            case 'string':
                return value instanceof String ? null : 'a string'
            case 'choice':
                return (value instanceof String && value in p.choices) ? null : "one of ${p.choices}"
            case 'integer':
                return (value instanceof Integer || value instanceof Long) && inRange(p, value) ? null : 'a whole number in range'
            case 'number':
                return value instanceof Number && inRange(p, value) ? null : 'a number in range'
            case 'list':
                return value instanceof List && value.every { typeProblem(p.items, it) == null } ? null : "a list of ${p.items.type}"
            default:
                return "a value of unknown type ${p.type}"
        }
    }

    static boolean inRange(Map p, Number value) {
        if (p.min != null && (p.min_open ? value <= p.min : value < p.min)) {
            return false
        }
        return p.max == null || (p.max_open ? value < p.max : value <= p.max)
    }

    /** Command-line words the runner script adds after `mlops <command>` (everything else goes in the file). */
    static List<String> runnerFlags() {
        String cli = new File(ROOT, 'vars/mlopsCli.groovy').text
        String words = (cli =~ '"\\$MLOPS_BIN" \\$MLOPS_COMMAND ([^2]*?) 2>&1')[0][1]
        return words.tokenize(' ')
    }

    // ------------------------------------------------------------------ the steps' options

    static Map<String, Map> stepOptions() {
        Map<String, Map> out = [:]
        new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }.each { File f ->
            String step = f.name - '.groovy'
            if (step in NOT_CALLING) {
                return
            }
            String block = (f.text =~ /(?s)Map defaults = \[(.*?)\n    \]/)[0][1]
            Map<String, String> defaults = [:]
            block.readLines().each { String line ->
                def m = line =~ /^\s+(\w+):\s*(.+?),\s*\/\//
                if (m.find()) {
                    defaults[m.group(1)] = m.group(2)
                }
            }
            String call = (f.text =~ /(?s)mlopsOptions\(step: '\w+'(.*?)\)\n/)[0][1]
            Map<String, List<String>> choices = [:]
            (call =~ /(\w+): \[('[^\]]*)\]/).each { m -> choices[m[1]] = (m[2] =~ /'([^']*)'/).collect { it[1] } }
            out[step] = [defaults: defaults, choices: choices]
        }
        return out
    }

    /** Configurations of one step: every command x mode, each other choice, and every value option set. */
    static List<Map> configurations(String step, Map options) {
        Map<String, List<String>> choices = options.choices
        List<Map> bases = [[:]]
        ['command', 'mode'].findAll { choices[it] }.each { String key ->
            bases = bases.collectMany { Map b -> choices[key].collect { b + [(key): it] } }
        }
        List<Map> configs = []
        choices.findAll { !(it.key in ['command', 'mode']) }.each { String key, List<String> values ->
            values.each { configs << [(key): it] }
        }
        List<String> valueOptions = options.defaults.findAll { k, v ->
            (v == 'null' || v.startsWith("'")) && !k.toLowerCase().endsWith('credentialsid') && !choices.containsKey(k) && SAMPLES.containsKey(k)
        }.keySet() as List
        boolean line = step.endsWith('Line')
        bases.each { Map b ->
            configs << b
            configs << b + valueOptions.collectEntries { [(it): SAMPLES[it]] }
            if (!line) {
                valueOptions.each { configs << b + [(it): SAMPLES[it]] }
            }
            if (b.command == 'logs') {
                configs << b + [params: [trial: 'sample-exp-0001']]     // experiment logs needs its argument
            }
        }
        return configs
    }

    static final List<Map> BUILDS = [
        [BRANCH_NAME: 'main'],
        [BRANCH_NAME: 'data/batch-2'],
        [BRANCH_NAME: 'PR-12', CHANGE_ID: '12', CHANGE_BRANCH: 'data/batch-2', CHANGE_TARGET: 'main'],
    ]

    /** Runs the step once with a stand-in CLI; returns the mlops calls it made (a step's own refusal is fine). */
    List<Map> callsOf(String step, Map config, Map buildEnv) {
        PipelineHarness harness = new PipelineHarness(ROOT)
        try {
            harness.env.putAll(buildEnv)
            ['mlops-dvc-s3', 'mlops-registry', 'mlflow'].each { harness.credentials[it] = [username: 'u', password: 'p'] }
            ['mlops-github-token', 'mlops-slack', 'mlops-kubeconfig'].each { harness.credentials[it] = 'secret' }
            harness.shHandler = { Map c ->
                [stdout: [('find mlops on PATH'): '/usr/bin/mlops', ('commit of the workspace'): 'abcdef0123456789\n',
                          ('is the commit on the remote'): 'origin/PR-12\n'][c.label] ?: '']
            }
            harness.mlopsHandler = { Map c -> [exitCode: 0, json: ANSWER] }
            try {
                if (step == 'mlopsAgent') {
                    harness.run(step, config, { -> null })
                } else {
                    harness.run(step, config)
                }
            } catch (PipelineError ignored) {
                // the step refused this combination itself, before or between CLI calls
            }
            return harness.mlopsCalls
        } finally {
            harness.cleanup()
        }
    }

    // ------------------------------------------------------------------ tests

    void testEveryMlopsCallOfEveryStepMatchesTheClickCommands() {
        Map<String, Map> steps = stepOptions()
        assert steps.keySet().containsAll(['mlopsCli', 'mlopsData', 'mlopsDataLine', 'mlopsDeploy', 'mlopsDeployLine',
                                           'mlopsExperiment', 'mlopsImage', 'mlopsModel', 'mlopsNotify', 'mlopsPullRequest'])
        List<String> failures = []
        Map<String, Set<String>> covered = [:].withDefault { [] as Set }
        int checked = 0
        steps.each { String step, Map options ->
            List<Map> builds = step.endsWith('Line') || step == 'mlopsPullRequest' ? BUILDS : [BUILDS[1]]
            List<Map> configs = step == 'mlopsCli' ? cliConfigurations() : configurations(step, options)
            builds.each { Map buildEnv ->
                configs.each { Map config ->
                    callsOf(step, config, buildEnv).each { Map call ->
                        checked++
                        covered[step] << (config.command ?: call.command).toString()
                        problems(call).each { failures << "${step}(${config}) on ${buildEnv.BRANCH_NAME}: ${it}".toString() }
                    }
                }
            }
        }
        assert failures.isEmpty(): "${failures.size()} calls break the CLI contract:\n" + failures.unique().take(30).join('\n')
        // every command a step offers really reached the CLI at least once
        steps.each { String step, Map options ->
            (options.choices.command ?: []).each { assert it in covered[step]: "${step}: command '${it}' was never run" }
        }
        assert covered.mlopsDataLine.containsAll(['config validate', 'data status', 'data push', 'config show', 'pr open', 'line data'])
        assert checked > 500
    }

    /** mlopsCli runs any command that prints a --json result (not `jenkins seed`, which talks to Jenkins itself). */
    static List<Map> cliConfigurations() {
        Map samples = [string: 'x', boolean: true, integer: 1, number: 1.5]
        Map runnable = loadContract().commands.findAll { !it.key.startsWith('jenkins') && '--json' in it.value.flags }
        return runnable.collect { String name, Map cmd ->
            [command: name, params: cmd.params.findAll { it.value.required }.collectEntries { k, p -> [(k): samples[p.type]] }]
        } + [[command: 'data status', params: [base: 'origin/main']], [command: 'line data', params: [local: true, force: false]]]
    }

    void testTheCheckerCatchesWhatTheOldStepsSent() {
        // the defects this contract exists for, as the old mlopsPullRequest and writeJSON produced them
        assert problems([command: 'pr open', params: [head: 'data/x', base: 'main']])[0].contains("has no parameter 'head'")
        assert problems([command: 'pr open', params: [branch: 'data/x', body: 'text']])[0].contains("has no parameter 'body'")
        Map bean = (Map) PipelineHarness.jsonLib([rev: "HEAD~${1}"]).rev
        assert bean.keySet().containsAll(['strings', 'valueCount'])
        assert problems([command: 'data version', params: [rev: bean]])[0].contains("parameter 'rev' must be a string")
        assert problems([command: 'deploy wait', params: [timeout_minutes: 0]])[0].contains('must be a number in range')
        assert problems([command: 'notify failure', params: [:]])[0].contains("needs parameter 'message'")
        assert problems([command: 'data stats', params: [:]])[0].contains('is not a command of the CLI')
        assert problems([command: 'data status', params: [base: 'origin/main']]).isEmpty()
        assert runnerFlags() == ['--json']
    }

    void testTheContractIsReadFromClick() {
        Map c = loadContract()
        assert c.commands['pr open'].params.keySet() == ['base', 'branch', 'experiment', 'since', 'title'] as Set
        assert c.commands['model promote'].params.version == [kind: 'argument', required: true, type: 'string']
        assert c.commands['experiment run'].params.path_map.type == 'list'
        assert c.root.env.MLOPS_PARAMS_FILE == 'params_file'
        assert ['data status', 'pr open', 'line data', 'notify failure', 'deploy wait'].every { '--json' in c.commands[it].flags }
    }
}
