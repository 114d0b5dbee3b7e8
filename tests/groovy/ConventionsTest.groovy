import harness.PipelineError
import harness.StepTestCase
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.builder.AstBuilder
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MapEntryExpression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.PropertyExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.control.CompilePhase

/** Rules every step follows (as SAP's CommonStepsTest does for its library). */
class ConventionsTest extends StepTestCase {

    static List<File> stepFiles() {
        new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort { it.name }
    }

    void testEveryStepHasAHelpPageNamingItsOptions() {
        stepFiles().each { File f ->
            File txt = new File(f.path.replace('.groovy', '.txt'))
            assert txt.file: "${f.name} has no ${txt.name}"
            String block = (f.text =~ /(?s)Map defaults = \[(.*?)\n    \]/)[0][1]
            List<String> options = block.readLines().collect { (it =~ /^\s+(\w+):/) }.findAll { it.find() }.collect { it.group(1) }
            assert options: "${f.name}: no commented defaults map"
            options.each { assert txt.text.contains("<code>${it}</code>"): "${txt.name} does not document option '${it}'" }
            assert txt.text.contains('Example'): "${txt.name} has no example"
        }
    }

    void testEveryDefaultIsCommented() {
        stepFiles().each { File f ->
            String block = (f.text =~ /(?s)Map defaults = \[(.*?)\n    \]/)[0][1]
            block.readLines().findAll { it =~ /^\s+\w+:/ }.each { assert it.contains('//'): "${f.name}: uncommented default: ${it.trim()}" }
        }
    }

    void testEveryStepRejectsUnknownOptionsListingTheKnownOnes() {
        stepFiles().each { File f ->
            String step = f.name - '.groovy'
            setUp()
            try {
                List args = takesBlock(step) ? [[bogusOption: 1], { -> null }] : [[bogusOption: 1]]
                h.run(step, *args)
                assert false: "${step} accepted an unknown option"
            } catch (PipelineError e) {
                assert e.message.startsWith("${step}: unknown option 'bogusOption'; known options: "): e.message
            } finally {
                tearDown()
            }
            assert h.shCalls.isEmpty(): "${step} ran sh before validating its options"
        }
    }

    /** Walks the script body and every method of a vars file. */
    static void visitAll(File f, CodeVisitorSupport visitor) {
        new AstBuilder().buildFromString(CompilePhase.CONVERSION, false, f.text).each { ASTNode node ->
            if (node instanceof ClassNode) {
                ((ClassNode) node).methods.each { it.code?.visit(visitor) }
            } else {
                node.visit(visitor)
            }
        }
    }

    void testNoShScriptIsBuiltFromValues() {
        // static: every sh script in vars/ is one single-quoted literal (no GString, no concatenation, no variable)
        int scripts = 0
        stepFiles().each { File f ->
            visitAll(f, new CodeVisitorSupport() {
                @Override
                void visitMethodCallExpression(MethodCallExpression call) {
                    if (call.methodAsString == 'sh') {
                        Expression script = scriptArgument(call.arguments)
                        assert script instanceof ConstantExpression && script.value instanceof String:
                            "${f.name}:${call.lineNumber}: sh script must be a single-quoted literal, found ${script?.getClass()?.simpleName}: ${script?.text}"
                        scripts++
                    }
                    super.visitMethodCallExpression(call)
                }
            })
        }
        assert scripts >= 5
    }

    static Expression scriptArgument(Expression arguments) {
        List<Expression> args = arguments instanceof TupleExpression ? ((TupleExpression) arguments).expressions : [arguments]
        for (Expression a : args) {
            if (a instanceof MapExpression) {
                MapEntryExpression e = ((MapExpression) a).mapEntryExpressions.find { it.keyExpression.text == 'script' }
                return e?.valueExpression
            }
        }
        return args ? args[0] : null
    }

    void testSecretsAreNeverReadIntoGroovy() {
        // the variables withCredentials binds are for the shell/CLI only: Groovy never reads env.<SECRET>
        List<String> secretVars = ['AWS_SECRET_ACCESS_KEY', 'GITHUB_TOKEN', 'SLACK_BOT_TOKEN', 'SLACK_WEBHOOK_URL',
                                   'REGISTRY_PASSWORD', 'MLFLOW_TRACKING_PASSWORD', 'DOCKER_CONFIG_JSON', 'KUBECONFIG']
        stepFiles().each { File f ->
            visitAll(f, new CodeVisitorSupport() {
                @Override
                void visitPropertyExpression(PropertyExpression e) {
                    assert !(e.propertyAsString in secretVars): "${f.name}:${e.lineNumber}: Groovy reads secret ${e.text}"
                    super.visitPropertyExpression(e)
                }

                @Override
                void visitVariableExpression(VariableExpression e) {
                    assert !(e.name in secretVars): "${f.name}:${e.lineNumber}: Groovy reads secret ${e.name}"
                }
            })
        }
    }

    void testCredentialsIdDefaultsAgreeAcrossSteps() {
        Map<String, Set<String>> byVariable = [:].withDefault { [] as Set }
        stepFiles().each { File f ->
            (f.text =~ /(\w*[cC]redentialsId): '([^']+)'/).each { m -> byVariable[m[2]] << "${f.name}:${m[1]}".toString() }
        }
        Set<String> ids = byVariable.keySet()
        assert ids == ['mlops-dvc-s3', 'mlops-registry', 'mlops-github-token', 'mlops-slack', 'mlops-kubeconfig'] as Set
        String doc = new File(ROOT, 'docs/jenkins.md').text
        ids.each { assert doc.contains("`${it}`"): "docs/jenkins.md does not describe credentials id ${it}" }
    }

    void testDefaultsJsonPinsThePackageVersion() {
        Map shared = new groovy.json.JsonSlurper().parse(new File(ROOT, 'resources/mlops/defaults.json'))
        String version = (new File(ROOT, 'pyhelpers/__init__.py').text =~ /__version__ = "([^"]+)"/)[0][1]
        assert shared.pyhelpersVersion == version: 'resources/mlops/defaults.json pyhelpersVersion must follow pyhelpers.__version__'
        assert new File(ROOT, "resources/${shared.podTemplate}").file
    }
}
