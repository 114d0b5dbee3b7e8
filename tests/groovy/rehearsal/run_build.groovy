/*
 * Jenkins builds of a project's Jenkinsfile through the pipeline harness, with a real `sh` into the
 * real `mlops` (tests/test_cluster_rehearsal.py drives it).
 *   groovy -cp tests/groovy tests/groovy/rehearsal/run_build.groovy BUILD.json RESULT.json
 *   groovy -cp tests/groovy tests/groovy/rehearsal/run_build.groovy --serve
 *       (one JVM for several builds: reads "BUILD.json RESULT.json" lines on stdin, answers "done RESULT.json")
 * BUILD.json: {jenkinsfile, workspace, repo (git URL of the project), branch, env: {...}, params: {...},
 *              credentials: {id: "secret" | {username:, password:}}}
 * `checkout scm` clones `repo` at `branch` into the workspace with the agent's git and credentials (HOME),
 * as the Git plugin does, and returns its map (GIT_COMMIT, GIT_BRANCH, GIT_URL). The Jenkinsfile's
 * `@Library('mlops') _` line loads this library, which the harness loads from vars/.
 * RESULT.json: {status, error, stages, log, calls: [{name, stage}], sh: [{label, env (MLOPS_*), cwd, stage}],
 *               params_files: [{command, text}], build: [...], description}
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import harness.PipelineHarness
import harness.PipelineScript
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.customizers.ImportCustomizer

String git(Map env, File dir, List<String> argv) {
    ProcessBuilder pb = new ProcessBuilder(['git'] + argv).directory(dir).redirectErrorStream(true)
    pb.environment().putAll([PATH: env.PATH, HOME: env.HOME])   // the agent's git and its credentials
    Process p = pb.start()
    String out = p.inputStream.getText('UTF-8')
    if (p.waitFor() != 0) {
        throw new IllegalStateException("git ${argv.join(' ')}: ${out}")
    }
    return out.trim()
}

void runBuild(File specFile, File resultFile) {
    Map spec = new JsonSlurperClassic().parse(specFile) as Map
    File root = new File(System.getProperty('mlops.root', '.')).canonicalFile
    File workspace = new File((String) spec.workspace)
    workspace.mkdirs()

    PipelineHarness h = new PipelineHarness(root, workspace)
    h.realSh = true
    h.env.putAll((Map<String, String>) spec.env)
    h.env.BRANCH_NAME = (String) spec.branch
    h.env.remove('GIT_COMMIT')   // a scripted pipeline does not get it; `checkout scm` returns it
    h.params.putAll((Map) (spec.params ?: [:]))
    h.credentials.putAll((Map) (spec.credentials ?: [:]))

    h.registerStep('checkout') { List a ->
        if (!new File(workspace, '.git').directory) {
            git(h.env, workspace, ['init', '-q'])
            git(h.env, workspace, ['remote', 'add', 'origin', (String) spec.repo])
        }
        git(h.env, workspace, ['fetch', '-q', 'origin', '+refs/heads/*:refs/remotes/origin/*'])
        git(h.env, workspace, ['checkout', '-q', '-f', '-B', (String) spec.branch, "origin/${spec.branch}".toString()])
        String commit = git(h.env, workspace, ['rev-parse', 'HEAD'])
        return [GIT_COMMIT: commit, GIT_BRANCH: "origin/${spec.branch}".toString(), GIT_URL: spec.repo,
                GIT_LOCAL_BRANCH: spec.branch]
    }

    // What each `mlops` call received: the parameter file as the CLI read it (mlopsCli may delete it after).
    List<Map> paramsFiles = []
    Closure shStep = h.steps['sh']
    h.registerStep('sh') { List a ->
        String file = h.env.MLOPS_PARAMS_FILE
        if (h.env.MLOPS_COMMAND && file) {
            File f = h.resolve(file)
            paramsFiles << [command: h.env.MLOPS_COMMAND, text: f.file ? f.text : null]
        }
        return shStep.call(a)
    }

    CompilerConfiguration cc = new CompilerConfiguration()
    cc.scriptBaseClass = PipelineScript.name
    cc.addCompilationCustomizers(new ImportCustomizer().addImports('com.cloudbees.groovy.cps.NonCPS'))
    String text = new File((String) spec.jenkinsfile).text
    assert text =~ /(?m)^@Library\('mlops'\) _$/: 'the Jenkinsfile does not load the mlops library'
    text = text.replaceFirst(/(?m)^@Library\('mlops'\) _$/, '')
    Script jenkinsfile = new GroovyShell(h.getClass().classLoader, h.binding, cc).parse(text, 'Jenkinsfile')

    Map result = [status: 'SUCCESS', error: null]
    try {
        jenkinsfile.run()
    } catch (Throwable t) {
        result.status = 'FAILURE'
        result.error = "${t.getClass().simpleName}: ${t.message}".toString()
    }
    result.stages = h.stages
    result.log = h.log.toString()
    result.calls = h.calls.collect { [name: it.name, stage: it.stage] }
    result.sh = h.shCalls.collect { Map c -> [label: c.label, cwd: c.cwd, stage: c.stage, container: c.container,
                                              env: c.env.findAll { k, v -> k.startsWith('MLOPS_') }] }
    result.params_files = paramsFiles
    result.build = h.callsTo('build').collect { it.args[0] }
    result.description = h.currentBuild.description
    resultFile.text = JsonOutput.toJson(result)
}

if (args && args[0] == '--serve') {
    BufferedReader input = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
    String line
    while ((line = input.readLine()) != null && line.trim()) {
        List<String> files = line.trim().tokenize(' ')
        runBuild(new File(files[0]), new File(files[1]))
        println "done ${files[1]}"
        System.out.flush()
    }
} else {
    runBuild(new File(args[0]), new File(args[1]))
}
