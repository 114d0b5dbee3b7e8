/*
 * Runs every tests/groovy/*Test.groovy in this one JVM (Groovy 2.4, as Jenkins uses).
 *   groovy -cp tests/groovy tests/groovy/run.groovy [--results FILE] [NAME_FILTER]
 * Prints one line per test and a closing "N passed, N failed, N skipped"; exit 1 on any failure.
 */
import groovy.json.JsonOutput
import harness.SkipTest

File here = new File(getClass().protectionDomain.codeSource.location.path).parentFile
if (!new File(here, 'harness').directory) {
    here = new File('tests/groovy').canonicalFile
}
System.setProperty('mlops.root', System.getProperty('mlops.root') ?: here.parentFile.parentFile.path)

List<String> argv = args as List
File resultsFile = null
int i = argv.indexOf('--results')
if (i >= 0) {
    resultsFile = new File(argv[i + 1])
    argv = argv[0..<i] + argv.drop(i + 2)
}
String filter = argv ? argv[0] : null

List<Map> results = []
GroovyClassLoader loader = new GroovyClassLoader(this.class.classLoader)
loader.addClasspath(here.path)
here.listFiles().findAll { it.name.endsWith('Test.groovy') }.sort { it.name }.each { File f ->
    Class cls = loader.parseClass(f)
    cls.declaredMethods.findAll { it.name.startsWith('test') && it.parameterTypes.length == 0 }
        .sort { it.name }.each { method ->
            String id = "${cls.simpleName}::${method.name}"
            if (filter && !id.contains(filter)) {
                return
            }
            long t0 = System.currentTimeMillis()
            Map r = [id: id, status: 'passed', message: '']
            def test = cls.newInstance()
            try {
                test.setUp()
                method.invoke(test)
            } catch (Throwable t) {
                Throwable cause = (t instanceof java.lang.reflect.InvocationTargetException) ? t.cause : t
                if (cause instanceof SkipTest) {
                    r.status = 'skipped'
                    r.message = cause.message
                } else {
                    r.status = 'failed'
                    StringWriter sw = new StringWriter()
                    org.codehaus.groovy.runtime.StackTraceUtils.deepSanitize(cause).printStackTrace(new PrintWriter(sw))
                    List<String> lines = sw.toString().readLines()
                    List<String> trace = lines.findAll { it.startsWith('\tat ') && it.contains('.groovy') }.take(12)
                    r.message = "${cause.getClass().name}: ${cause.message}\n" + trace.join('\n')
                    String log = test.h?.log?.toString()
                    if (log) {
                        r.message += "\n--- build log (last 3000 chars) ---\n" + log.drop(Math.max(0, log.length() - 3000))
                    }
                }
            } finally {
                try {
                    test.tearDown()
                } catch (Throwable ignored) {
                    // cleanup problems must not hide the test result
                }
            }
            r.seconds = (System.currentTimeMillis() - t0) / 1000.0
            results << r
            println "${r.status.toUpperCase().padRight(7)} ${id} (${r.seconds}s)${r.status == 'passed' ? '' : '\n    ' + r.message.readLines().join('\n    ')}"
        }
}

if (resultsFile) {
    resultsFile.text = JsonOutput.toJson(results)
}
int passed = results.count { it.status == 'passed' }
int failed = results.count { it.status == 'failed' }
int skipped = results.count { it.status == 'skipped' }
println "${passed} passed, ${failed} failed, ${skipped} skipped"
System.exit(failed ? 1 : (results ? 0 : 5))
