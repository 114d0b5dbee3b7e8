package harness

import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer
import org.codehaus.groovy.runtime.InvokerHelper

/**
 * A minimal pipeline runtime in the spirit of JenkinsPipelineUnit (not reachable from here):
 * loads vars/*.groovy as Jenkins does (each a global variable callable from the others), offers the
 * steps the library may use, records every call, and fails on any step it does not know.
 *
 * `sh` is mocked by default (tests answer it); with `realSh = true` it runs /bin/sh for real in the
 * workspace, which the contract test uses to drive the installed `mlops` CLI.
 */
class PipelineHarness {

    /** Compiled vars scripts, shared by all harness instances of this JVM (compiling is the slow part). */
    private static final Map<String, Class> COMPILED = [:]

    final File libraryRoot
    final File workspace
    final Binding binding = new Binding()
    final Map<String, String> env = [:]
    final Map<String, Object> params = [:]
    final Map<String, Object> currentBuild = [result: null, currentResult: 'SUCCESS', description: null,
                                              number: 7, absoluteUrl: 'https://jenkins.example/job/demo/7/',
                                              fullProjectName: 'demo/pipeline/main']
    /** Every step and library-variable call, in order: [name:, args:, stage:, depth:]. */
    final List<Map> calls = []
    /** Every `sh`: [script:, env: (snapshot), label:, returnStatus:, returnStdout:, cwd:, container:]. */
    final List<Map> shCalls = []
    /** Every `mlops` run through the mlopsCli runner script: [command:, params:, env:]. */
    final List<Map> mlopsCalls = []
    /** What the build log would show: echo, sh output, error messages. */
    final StringBuilder log = new StringBuilder()
    /** Credentials store: id -> String (secret text / file content) or [username:, password:]. */
    final Map<String, Object> credentials = [:]
    final Map<String, Closure> steps = [:]
    final List<String> stages = []

    boolean realSh = false
    /** Answers a mocked `sh`: closure(Map call) -> [status: int, stdout: String] (or null for 0/''). */
    Closure shHandler = null
    /** Answers an `mlops` call: closure(Map call) -> [exitCode:, json:, stderr:]. */
    Closure mlopsHandler = null

    private File cwd
    private String currentStage = null
    private String currentContainer = null
    private int depth = 0
    private final Map<String, LibraryVar> vars = [:]

    PipelineHarness(File libraryRoot, File workspace = null) {
        this.libraryRoot = libraryRoot.canonicalFile
        this.workspace = (workspace ?: File.createTempDir('mlops-ws-', '')).canonicalFile
        this.cwd = this.workspace
        env.putAll([WORKSPACE: this.workspace.path, BUILD_URL: currentBuild.absoluteUrl, BUILD_NUMBER: '7',
                    JOB_NAME: 'demo/pipeline/main', BRANCH_NAME: 'main', GIT_COMMIT: '0123456789abcdef0123456789abcdef01234567'])
        binding.setVariable('__harness', this)
        binding.setVariable('env', env)
        binding.setVariable('params', params)
        binding.setVariable('currentBuild', currentBuild)
        binding.setVariable('scm', [$class: 'GitSCM', branches: [[name: 'main']]])
        registerDefaultSteps()
        loadLibrary()
    }

    // ---------------------------------------------------------------- library loading

    private void loadLibrary() {
        new File(libraryRoot, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort().each { File f ->
            String name = f.name - '.groovy'
            Script script = InvokerHelper.createScript(compile(f), binding)
            LibraryVar var = new LibraryVar(name, script, this)
            vars[name] = var
            binding.setVariable(name, var)
        }
    }

    private static synchronized Class compile(File f) {
        String key = "${f.path}:${f.lastModified()}"
        if (!COMPILED.containsKey(key)) {
            CompilerConfiguration cc = new CompilerConfiguration()
            cc.scriptBaseClass = PipelineScript.name
            // Jenkins imports @NonCPS into every pipeline script
            cc.addCompilationCustomizers(new ImportCustomizer().addImports('com.cloudbees.groovy.cps.NonCPS'))
            GroovyClassLoader loader = new GroovyClassLoader(PipelineHarness.classLoader, cc)
            COMPILED[key] = loader.parseClass(new GroovyCodeSource(f.text, f.name - '.groovy', '/groovy/shell'))
        }
        return COMPILED[key]
    }

    Set<String> getLibraryVarNames() { vars.keySet() }

    /** Run a library step as a Jenkinsfile would: `harness.run('mlopsCli', [command: 'data status'])`. */
    Object run(String name, Object... args) {
        LibraryVar var = vars[name]
        assert var != null: "no vars/${name}.groovy"
        return var.call(args)
    }

    Object callLibraryVar(LibraryVar var, Object[] args) {
        record(var.varName(), args)
        depth++
        try {
            return var.varScript().invokeMethod('call', args)
        } finally {
            depth--
        }
    }

    // ---------------------------------------------------------------- steps

    Object invokeStep(String name, Object[] args) {
        Closure step = steps[name]
        if (step == null) {
            throw new UnregisteredStep(name)
        }
        record(name, args)
        depth++
        try {
            return step.call(args as List)
        } finally {
            depth--
        }
    }

    void registerStep(String name, Closure body) { steps[name] = body }

    private void record(String name, Object[] args) {
        calls << [name: name, args: args as List, stage: currentStage, depth: depth]
    }

    List<Map> callsTo(String name) { calls.findAll { it.name == name } }

    private void registerDefaultSteps() {
        registerStep('echo') { List a -> appendLog("${a[0]}\n") }
        registerStep('error') { List a -> appendLog("ERROR: ${a[0]}\n"); throw new PipelineError("${a[0]}") }
        registerStep('sh') { List a -> sh(a[0] instanceof Map ? (Map) a[0] : [script: a[0]]) }
        registerStep('withEnv') { List a -> withEnvVars(parseEnv((List) a[0]), (Closure) a[1]) }
        registerStep('withCredentials') { List a -> withCredentials((List) a[0], (Closure) a[1]) }
        ['string', 'usernamePassword', 'file', 'usernameColonPassword', 'sshUserPrivateKey'].each { String type ->
            registerStep(type) { List a -> [bindingType: type] + (Map) a[0] }
        }
        registerStep('stage') { List a -> inStage("${a[0]}", (Closure) a[-1]) }
        registerStep('timeout') { List a -> ((Closure) a[-1]).call() }
        registerStep('retry') { List a -> retry(a[0] instanceof Map ? ((Map) a[0]).count as int : a[0] as int, (Closure) a[-1]) }
        registerStep('sleep') { List a -> null }
        registerStep('node') { List a -> ((Closure) a[-1]).call() }
        registerStep('podTemplate') { List a -> withEnvVars([POD_LABEL: 'mlops-pod-1'], (Closure) a[-1]) }
        registerStep('container') { List a -> inContainer("${a[0]}", (Closure) a[-1]) }
        registerStep('dir') { List a -> inDir("${a[0]}", (Closure) a[-1]) }
        registerStep('pwd') { List a -> pwd(a ? (Map) a[0] : [:]) }
        registerStep('isUnix') { List a -> true }
        registerStep('checkout') { List a -> [GIT_COMMIT: env.GIT_COMMIT, GIT_BRANCH: env.BRANCH_NAME] }
        registerStep('build') { List a -> null }
        registerStep('archiveArtifacts') { List a -> null }
        registerStep('fileExists') { List a -> resolve("${a[0]}").exists() }
        registerStep('readFile') { List a -> resolve(a[0] instanceof Map ? "${a[0].file}" : "${a[0]}").text }
        registerStep('writeFile') { List a -> Map m = (Map) a[0]; File f = resolve("${m.file}"); f.parentFile.mkdirs(); f.text = "${m.text}"; null }
        registerStep('readJSON') { List a -> readJSON((Map) a[0]) }
        registerStep('writeJSON') { List a -> Map m = (Map) a[0]; File f = resolve("${m.file}"); f.parentFile.mkdirs(); f.text = JsonOutput.toJson(m.json); null }
        registerStep('libraryResource') { List a -> libraryResource("${a[0]}") }
    }

    // ---------------------------------------------------------------- step implementations

    void appendLog(String text) { log.append(text) }

    private Object inStage(String name, Closure body) {
        String saved = currentStage
        currentStage = name
        stages << name
        try {
            return body.call()
        } finally {
            currentStage = saved
        }
    }

    private Object inContainer(String name, Closure body) {
        String saved = currentContainer
        currentContainer = name
        try {
            return body.call()
        } finally {
            currentContainer = saved
        }
    }

    private Object inDir(String path, Closure body) {
        File saved = cwd
        cwd = resolve(path)
        cwd.mkdirs()
        try {
            return body.call()
        } finally {
            cwd = saved
        }
    }

    private Object retry(int count, Closure body) {
        Throwable last = null
        for (int attempt = 1; attempt <= count; attempt++) {
            try {
                return body.call()
            } catch (Error e) {
                throw e                 // assertion failures and unregistered steps are not retried
            } catch (Exception e) {
                last = e
                appendLog("Retrying (${attempt}/${count} failed): ${e.message}\n")
            }
        }
        throw last
    }

    private String pwd(Map m) {
        if (m?.tmp) {
            File tmp = new File(cwd.path + '@tmp')
            tmp.mkdirs()
            return tmp.path
        }
        return cwd.path
    }

    File resolve(String path) {
        File f = new File(path)
        return f.absolute ? f : new File(cwd, path)
    }

    private Object readJSON(Map m) {
        String text = m.containsKey('text') ? "${m.text}" : resolve("${m.file}").text
        return new JsonSlurperClassic().parseText(text)
    }

    private String libraryResource(String path) {
        File f = new File(libraryRoot, "resources/${path}")
        if (!f.file) {
            throw new PipelineError("No such library resource ${path} could be found.")
        }
        return f.text
    }

    private static Map<String, String> parseEnv(List entries) {
        Map<String, String> out = [:]
        entries.each { Object e ->
            String s = "${e}"
            int i = s.indexOf('=')
            assert i > 0: "withEnv entry without '=': ${s}"
            out[s.substring(0, i)] = s.substring(i + 1)
        }
        return out
    }

    /** Overrides for the block only; like Jenkins, `env.X = ...` inside the block outlives it for other keys. */
    Object withEnvVars(Map<String, String> values, Closure body) {
        Map<String, String> saved = values.keySet().collectEntries { [(it): env[it]] }
        env.putAll(values)
        try {
            return body.call()
        } finally {
            saved.each { k, v -> if (v == null) { env.remove(k) } else { env[k] = v } }
        }
    }

    private Object withCredentials(List bindings, Closure body) {
        Map<String, String> values = [:]
        bindings.each { Map b ->
            Object secret = credentials[b.credentialsId]
            if (secret == null) {
                throw new PipelineError("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            switch (b.bindingType) {
                case 'string':
                    values[b.variable] = "${secret}"
                    break
                case 'usernamePassword':
                    values[b.usernameVariable] = "${secret.username}"
                    values[b.passwordVariable] = "${secret.password}"
                    break
                case 'usernameColonPassword':
                    values[b.variable] = "${secret.username}:${secret.password}"
                    break
                case 'file':
                    File f = new File(pwd(tmp: true), "secretFiles/${b.credentialsId}")
                    f.parentFile.mkdirs()
                    f.text = "${secret}"
                    values[b.variable] = f.path
                    break
                default:
                    throw new AssertionError((Object) "unsupported credentials binding ${b}")
            }
        }
        return withEnvVars(values, body)
    }

    private Object sh(Map m) {
        Object script = m.script
        if (script instanceof GString) {
            // Jenkins would run it, but an interpolated script is an injection hole: fail loudly.
            throw new AssertionError((Object) "sh called with an interpolated GString script: ${script}")
        }
        Map call = [script: script, env: new LinkedHashMap(env), label: m.label, cwd: cwd.path,
                    returnStatus: m.returnStatus ?: false, returnStdout: m.returnStdout ?: false,
                    container: currentContainer, stage: currentStage]
        shCalls << call
        Map result
        if (realSh) {
            result = runReally((String) script, call.returnStdout as boolean)
        } else if (env.MLOPS_COMMAND != null && mlopsHandler != null) {
            result = answerMlops()
        } else {
            result = (shHandler?.call(call) ?: [:]) as Map
        }
        int status = (result.status ?: 0) as int
        String stdout = result.stdout ?: ''
        if (!call.returnStdout) {
            appendLog(stdout)
        }
        if (status != 0 && !call.returnStatus) {
            throw new PipelineError("script returned exit code ${status}")
        }
        return call.returnStatus ? status : (call.returnStdout ? stdout : null)
    }

    /** Acts as the mlops CLI behind mlopsCli's runner script: reads the params file, writes the result files. */
    private Map answerMlops() {
        File paramsFile = env.MLOPS_PARAMS_FILE ? new File(env.MLOPS_PARAMS_FILE) : null
        Map call = [command: env.MLOPS_COMMAND,
                    params: paramsFile?.exists() ? new JsonSlurperClassic().parseText(paramsFile.text) : null,
                    env: new LinkedHashMap(env)]
        mlopsCalls << call
        Map answer = (mlopsHandler.call(call) ?: [:]) as Map
        int code = (answer.exitCode ?: 0) as int
        new File(env.MLOPS_RESULT).text = answer.containsKey('json') ? JsonOutput.toJson(answer.json) : ''
        String stderr = answer.stderr ?: (code == 2 ? 'mlops: error: bad input\n' : (code ? 'mlops: error: failed\n' : ''))
        new File(env.MLOPS_LOG).text = stderr
        return [status: code, stdout: stderr]
    }

    /** Runs the script with /bin/sh -xe as Jenkins does, in the current directory, with the build's environment. */
    private Map runReally(String script, boolean returnStdout) {
        ProcessBuilder pb = new ProcessBuilder(['/bin/sh', '-xe', '-c', script])
        pb.directory(cwd)
        Map<String, String> penv = pb.environment()
        env.each { k, v -> if (v != null) { penv[k.toString()] = v.toString() } }
        pb.redirectErrorStream(!returnStdout)
        Process p = pb.start()
        p.outputStream.close()
        StringBuffer err = new StringBuffer()
        Thread errReader = null
        if (returnStdout) {
            errReader = p.consumeProcessErrorStream(err)
        }
        String out = p.inputStream.getText('UTF-8')
        int status = p.waitFor()
        errReader?.join()
        if (returnStdout) {
            appendLog(err.toString())
            return [status: status, stdout: out]
        }
        appendLog(out)
        return [status: status, stdout: '']
    }

    void cleanup() {
        workspace.deleteDir()
        new File(workspace.path + '@tmp').deleteDir()
    }
}
