package harness

import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import java.beans.Introspector
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
 *
 * Jenkins realities it models (each a behaviour a library once got wrong):
 *  - `checkout scm` returns the commit (GIT_COMMIT) while `env.GIT_COMMIT` is not set in a scripted
 *    pipeline (set `env.GIT_COMMIT` in a test to model it holding the shared library's commit);
 *  - `writeJSON` serialises with json-lib, which turns a nested GString into a bean (see jsonLib());
 *  - inside `withCredentials` the bound secret values are masked in what `echo` and `sh` print, but not
 *    in the text of an exception (Jenkins prints `error` messages unmasked at the end of the build);
 *  - pipeline-model-definition's Utils.markStageSkippedForConditional exists only when the plugin is
 *    installed: `new PipelineHarness(root, ws, false)` loads the library without it.
 */
class PipelineHarness {

    /** Compiled vars scripts, shared by all harness instances of this JVM (compiling is the slow part). */
    private static final Map<String, Class> COMPILED = [:]
    /** Test doubles of plugin classes that are not always installed (pipeline-model-definition's Utils). */
    static final File OPTIONAL_PLUGIN_CLASSES = new File(System.getProperty('mlops.root', '.'), 'tests/groovy/stubs')
    /** One loader for those doubles, so every step sees the same classes (and their recorded calls). */
    static final GroovyClassLoader OPTIONAL_PLUGINS = new GroovyClassLoader(PipelineHarness.classLoader).with {
        addClasspath(OPTIONAL_PLUGIN_CLASSES.path)
        it
    }

    /** Stage names the library marked with Utils.markStageSkippedForConditional (cleared by each harness). */
    static List<String> getSkippedForConditional() {
        return (List<String>) OPTIONAL_PLUGINS.loadClass('org.jenkinsci.plugins.pipeline.modeldefinition.Utils').SKIPPED
    }

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
    /** What `checkout scm` returns as GIT_COMMIT when sh is mocked (with realSh: the workspace's HEAD). */
    String checkoutCommit = '0123456789abcdef0123456789abcdef01234567'
    /** Extra entries of the map `checkout scm` returns (GIT_BRANCH, GIT_URL, ...). */
    final Map<String, String> checkoutResult = [:]
    /** Resources held by `lock`, in order of acquisition. */
    final List<String> locks = []
    /** Secret values bound by the withCredentials blocks currently open (masked in echo/sh output). */
    private final List<List<String>> masks = []
    final boolean modelDefinition
    /** Answers a mocked `sh`: closure(Map call) -> [status: int, stdout: String] (or null for 0/''). */
    Closure shHandler = null
    /** Answers an `mlops` call: closure(Map call) -> [exitCode:, json:, stderr:]. */
    Closure mlopsHandler = null

    private File cwd
    private String currentStage = null
    private String currentContainer = null
    private int depth = 0
    private final Map<String, LibraryVar> vars = [:]

    PipelineHarness(File libraryRoot, File workspace = null, boolean modelDefinition = true) {
        this.libraryRoot = libraryRoot.canonicalFile
        this.workspace = (workspace ?: File.createTempDir('mlops-ws-', '')).canonicalFile
        this.cwd = this.workspace
        this.modelDefinition = modelDefinition
        skippedForConditional.clear()
        // no GIT_COMMIT: a scripted pipeline does not get it from the branch source (the checkout returns it)
        env.putAll([WORKSPACE: this.workspace.path, BUILD_URL: currentBuild.absoluteUrl, BUILD_NUMBER: '7',
                    JOB_NAME: 'demo/pipeline/main', BRANCH_NAME: 'main'])
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
            Script script = InvokerHelper.createScript(compile(f, modelDefinition), binding)
            LibraryVar var = new LibraryVar(name, script, this)
            vars[name] = var
            binding.setVariable(name, var)
        }
    }

    private static synchronized Class compile(File f, boolean modelDefinition) {
        String key = "${f.path}:${f.lastModified()}:${modelDefinition}"
        if (!COMPILED.containsKey(key)) {
            CompilerConfiguration cc = new CompilerConfiguration()
            cc.scriptBaseClass = PipelineScript.name
            // Jenkins imports @NonCPS into every pipeline script
            cc.addCompilationCustomizers(new ImportCustomizer().addImports('com.cloudbees.groovy.cps.NonCPS'))
            GroovyClassLoader loader = new GroovyClassLoader(modelDefinition ? OPTIONAL_PLUGINS : PipelineHarness.classLoader, cc)
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
        // Jenkins prints an error's message at the end of the build, outside any withCredentials: unmasked
        registerStep('error') { List a -> log.append("ERROR: ${a[0]}\n"); throw new PipelineError("${a[0]}") }
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
        registerStep('checkout') { List a -> checkout() }
        registerStep('lock') { List a -> lock(a[0], (Closure) a[-1]) }
        registerStep('deleteDir') { List a -> cwd.deleteDir(); null }
        registerStep('build') { List a -> null }
        registerStep('archiveArtifacts') { List a -> null }
        registerStep('fileExists') { List a -> resolve("${a[0]}").exists() }
        registerStep('readFile') { List a -> resolve(a[0] instanceof Map ? "${a[0].file}" : "${a[0]}").text }
        registerStep('writeFile') { List a -> Map m = (Map) a[0]; File f = resolve("${m.file}"); f.parentFile.mkdirs(); f.text = "${m.text}"; null }
        registerStep('readJSON') { List a -> readJSON((Map) a[0]) }
        registerStep('writeJSON') { List a -> writeJSON((Map) a[0]) }
        registerStep('libraryResource') { List a -> libraryResource("${a[0]}") }
    }

    // ---------------------------------------------------------------- step implementations

    /** Build-log output; inside withCredentials the bound secrets are masked as credentials-binding does. */
    void appendLog(String text) {
        String shown = text
        masks.flatten().findAll { it }.sort { -it.length() }.each { String secret -> shown = shown.replace(secret, '****') }
        log.append(shown)
    }

    /** The map `checkout scm` returns (git plugin): the commit checked out, never env.GIT_COMMIT. */
    private Map checkout() {
        String commit = checkoutCommit
        if (realSh && new File(cwd, '.git').exists()) {
            Process p = new ProcessBuilder(['git', 'rev-parse', 'HEAD']).directory(cwd).start()
            commit = p.inputStream.getText('UTF-8').trim()
            p.waitFor()
        }
        return [GIT_COMMIT: commit, GIT_BRANCH: env.BRANCH_NAME] + checkoutResult
    }

    /** lockable-resources' `lock`: holds the resource for the block (one build here, so it never waits). */
    private Object lock(Object spec, Closure body) {
        String resource = spec instanceof Map ? "${((Map) spec).resource}" : "${spec}"
        assert resource && resource != 'null': "lock without a resource: ${spec}"
        assert !locks.contains(resource): "lock ${resource} taken twice by one build: it would wait for itself"
        locks << resource
        try {
            return body.call()
        } finally {
            locks.remove(resource)
            locksTaken << resource
        }
    }

    /** Every resource locked during the run, in order of release. */
    final List<String> locksTaken = []

    /**
     * pipeline-utility-steps' writeJSON: `JSONSerializer.toJSON(json)` (json-lib), not Groovy's JsonOutput.
     * json-lib keeps String, Number, Boolean, Map and List, and serialises any other object as a bean
     * (net.sf.json.JSONObject.defaultBeanProcessing: readable properties minus class, declaringClass and
     * metaClass), so a GString inside a Map is written as {"bytes": [...], "strings": [...], "valueCount": 1, "values": [...]}.
     */
    private Object writeJSON(Map m) {
        String text = JsonOutput.toJson(jsonLib(m.json))
        if (m.returnText) {
            return text
        }
        File f = resolve("${m.file}")
        f.parentFile.mkdirs()
        f.text = text
        return null
    }

    static Object jsonLib(Object value) {
        if (value == null || value instanceof String || value instanceof Number || value instanceof Boolean) {
            return value
        }
        if (value instanceof Character || value instanceof Enum) {
            return value.toString()
        }
        if (value instanceof Map) {
            return ((Map) value).collectEntries { k, v -> [("${k}".toString()): jsonLib(v)] }
        }
        if (value instanceof Collection || value.getClass().isArray()) {
            return value.collect { jsonLib(it) }
        }
        Map bean = new TreeMap()
        Introspector.getBeanInfo(value.getClass()).propertyDescriptors.each { pd ->
            if (pd.readMethod && !(pd.name in ['class', 'declaringClass', 'metaClass'])) {
                bean[pd.name] = jsonLib(pd.readMethod.invoke(value))
            }
        }
        return bean
    }

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
            } catch (InterruptedException e) {
                throw e                 // like workflow-basic-steps' retry: an abort (FlowInterruptedException) is not retried
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
        List<String> secrets = []
        bindings.each { Map b ->
            Object secret = credentials[b.credentialsId]
            if (secret == null) {
                throw new PipelineError("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            switch (b.bindingType) {
                case 'string':
                    values[b.variable] = "${secret}"
                    secrets << "${secret}".toString()
                    break
                case 'usernamePassword':
                    // credentials-binding masks the password (the username only when the credential says it is secret)
                    values[b.usernameVariable] = "${secret.username}"
                    values[b.passwordVariable] = "${secret.password}"
                    secrets << "${secret.password}".toString()
                    break
                case 'usernameColonPassword':
                    values[b.variable] = "${secret.username}:${secret.password}"
                    secrets << values[b.variable]
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
        masks << secrets
        try {
            return withEnvVars(values, body)
        } finally {
            masks.remove(masks.size() - 1)
        }
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
