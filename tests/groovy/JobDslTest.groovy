import groovy.json.JsonOutput
import harness.DslNode
import harness.JobDslScript
import harness.StepTestCase
import org.codehaus.groovy.control.CompilerConfiguration

/** jobs/mlopsJobs.groovy against a recording DSL, with a project map that is not in this repository. */
class JobDslTest extends StepTestCase {

    static final List<Map> PROJECTS = [
        [name: 'fraud-detect', repo: 'acme-ml/fraud-detect', credentialsId: 'acme-github', mainBranch: 'trunk',
         scriptPath: 'ci/Jenkinsfile', scanInterval: '4h', webhookToken: 'fraud-hook', keepDays: 7, keepBuilds: 5],
        [name: 'churn', repo: 'acme-ml/churn.model'],
    ]

    @Override
    void setUp() {
    }

    @Override
    void tearDown() {
    }

    DslNode seed(Object projects) {
        CompilerConfiguration cc = new CompilerConfiguration()
        cc.scriptBaseClass = JobDslScript.name
        DslNode root = new DslNode('root', [])
        Binding binding = new Binding([__dsl: root, PROJECTS: projects instanceof String ? projects : JsonOutput.toJson(projects)])
        new GroovyShell(getClass().classLoader, binding, cc).evaluate(new File(ROOT, 'jobs/mlopsJobs.groovy'))
        return root
    }

    void testDeclaresFolderMultibranchDeployJobAndViewPerProject() {
        DslNode root = seed(PROJECTS)
        assert root.children.collect { "${it.name} ${it.args[0]}".toString() } == [
            'folder fraud-detect', 'multibranchPipelineJob fraud-detect/pipeline', 'pipelineJob fraud-detect/deploy', 'listView fraud-detect/MLOps',
            'folder churn', 'multibranchPipelineJob churn/pipeline', 'pipelineJob churn/deploy', 'listView churn/MLOps']
    }

    void testMultibranchBranchSourceTriggersAndOrphans() {
        DslNode mb = seed(PROJECTS).item('multibranchPipelineJob', 'fraud-detect/pipeline')
        DslNode gh = mb.find('branchSources/branchSource/source/github')
        assert gh.value('id') == 'mlops-fraud-detect'
        assert gh.value('repoOwner') == 'acme-ml' && gh.value('repository') == 'fraud-detect'
        assert gh.value('repositoryUrl') == 'https://github.com/acme-ml/fraud-detect'
        assert gh.value('credentialsId') == 'acme-github'
        assert gh.value('traits/gitHubBranchDiscovery/strategyId') == 1
        // pull requests are built at their head revision (2), not merged with the target (1): a merged checkout is
        // a commit only the agent has, and the data line would tag the training image with it
        assert gh.value('traits/gitHubPullRequestDiscovery/strategyId') == 2
        assert mb.value('factory/workflowBranchProjectFactory/scriptPath') == 'ci/Jenkinsfile'
        assert mb.value('triggers/periodicFolderTrigger/interval') == '4h'
        assert mb.value('triggers/computedFolderWebHookTrigger/token') == 'fraud-hook'
        assert mb.value('orphanedItemStrategy/discardOldItems/daysToKeep') == 7
        assert mb.value('orphanedItemStrategy/discardOldItems/numToKeep') == 5
    }

    void testDefaultsForAMinimalProject() {
        DslNode root = seed(PROJECTS)
        DslNode mb = root.item('multibranchPipelineJob', 'churn/pipeline')
        assert mb.value('branchSources/branchSource/source/github/credentialsId') == 'mlops-github-app'
        assert mb.value('branchSources/branchSource/source/github/repository') == 'churn.model'
        assert mb.value('factory/workflowBranchProjectFactory/scriptPath') == 'Jenkinsfile'
        assert mb.value('triggers/periodicFolderTrigger/interval') == '1d'
        assert mb.find('triggers/computedFolderWebHookTrigger') == null
        DslNode deploy = root.item('pipelineJob', 'churn/deploy')
        assert deploy.value('definition/cpsScm/scm/git/branch') == 'main'
    }

    void testDeployLineJobIsParameterizedAndReadsTheMainBranch() {
        DslNode deploy = seed(PROJECTS).item('pipelineJob', 'fraud-detect/deploy')
        List params = deploy.find('parameters').all('stringParam')*.args
        assert params*.getAt(0) == ['EXPERIMENT', 'MLOPS_LINE']
        assert params[1][1] == 'deploy'
        DslNode git = deploy.find('definition/cpsScm/scm/git')
        assert git.value('remote/url') == 'https://github.com/acme-ml/fraud-detect.git'
        assert git.value('remote/credentials') == 'acme-github'
        assert git.value('branch') == 'trunk'
        assert deploy.value('definition/cpsScm/scriptPath') == 'ci/Jenkinsfile'
        assert deploy.value('definition/cpsScm/lightweight') == true
        assert deploy.find('properties/disableConcurrentBuilds') != null
    }

    void testListViewShowsBothJobs() {
        DslNode view = seed(PROJECTS).item('listView', 'fraud-detect/MLOps')
        assert view.find('jobs').all('name')*.args*.getAt(0) == ['pipeline', 'deploy']
        assert view.find('columns').children*.name.containsAll(['status', 'name', 'lastSuccess', 'buildButton'])
    }

    void testBadProjectMapsAreRejectedWithClearMessages() {
        Map cases = [
            '': 'parameter PROJECTS (JSON list of projects) is empty',
            ([[name: 'Bad Name', repo: 'a/b']]): "project #1: 'name' must be lowercase letters",
            ([[name: 'ok', repo: 'not-a-repo']]): "project #1 (ok): 'repo' must be OWNER/NAME on GitHub (got 'not-a-repo')",
            ([[name: 'ok', repo: 'a/b', branch: 'x']]): "project #1: unknown key 'branch'; known keys: credentialsId, displayName",
        ]
        cases.each { projects, String message ->
            try {
                seed(projects)
                assert false: "accepted ${projects}"
            } catch (IllegalArgumentException e) {
                assert e.message.contains(message)
            }
        }
    }

    void testExampleProjectsFileMatchesTheDslKeys() {
        // jobs/projects.yaml is what `mlops jenkins seed` sends by default; its keys must be ones the DSL knows
        List<String> keys = new File(ROOT, 'jobs/projects.yaml').readLines().collect { (it =~ /^[- ] (\w+):/) }
            .findAll { it.find() }.collect { it.group(1) }
        assert keys.containsAll(['name', 'repo'])
        String dsl = new File(ROOT, 'jobs/mlopsJobs.groovy').text
        keys.each { assert dsl.contains("'${it}'"): "jobs/projects.yaml key ${it} is not a known DSL key" }
    }
}
