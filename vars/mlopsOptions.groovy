/*
 * Option handling shared by every mlops step: defaults + config, unknown keys rejected with the
 * list of known ones, values checked against the type of their default and the allowed choices.
 * Error messages name the step, the option and what is allowed.
 */

/**
 * mlopsOptions(step: 'mlopsData', defaults: defaults, config: config,
 *              required: ['command'], choices: [command: ['status', 'push']]) -> merged Map
 */
def call(Map config = [:]) {
    Map defaults = [
        step: null,       // name of the calling step, used in messages
        defaults: [:],    // the step's commented defaults map (its keys are the known options)
        config: [:],      // what the user passed
        required: [],     // options that must be set (not null, not empty)
        choices: [:],     // option -> list of allowed values
    ]
    Map own = checked('mlopsOptions', defaults, config)
    Map cfg = checked(own.step ?: 'mlops', own.defaults, own.config)
    own.required.each { String key ->
        if (cfg[key] == null || cfg[key] == '') {
            error("${own.step}: option '${key}' is required")
        }
    }
    own.choices.each { String key, List allowed ->
        if (cfg[key] != null && !allowed.contains(cfg[key])) {
            error("${own.step}: option '${key}' must be one of ${allowed.join(', ')} (got '${cfg[key]}')")
        }
    }
    return cfg
}

/**
 * 'abort', 'timeout' or null: how a caught exception interrupted the build. Jenkins throws
 * FlowInterruptedException (workflow-step-api) when a user or a newer build aborts it and when a `timeout`
 * expires (cause TimeoutStepExecution.ExceededTimeout); its message is null. Matched by class name, so the
 * library loads where the class is not on the class path (the test harness).
 */
@NonCPS
String interruption(Throwable err) {
    if (err?.getClass()?.name != 'org.jenkinsci.plugins.workflow.steps.FlowInterruptedException') {
        return null
    }
    boolean timedOut = err.causes.any { it.getClass().name.endsWith('TimeoutStepExecution$ExceededTimeout') }
    return timedOut ? 'timeout' : 'abort'
}

Map checked(String step, Map defaults, Map config) {
    Map result = check(step, defaults, config)
    if (result.problem) {
        error(result.problem)
    }
    return result.options
}

/** Merge and type-check: [options: merged map (GStrings turned into Strings), problem: message or null]. */
@NonCPS
Map check(String step, Map defaults, Map config) {
    List<String> unknown = (config ?: [:]).keySet().findAll { !defaults.containsKey(it) }.collect { "${it}" }.sort()
    if (unknown) {
        return [problem: "${step}: unknown option '${unknown[0]}'; known options: ${defaults.keySet().sort().join(', ')}".toString()]
    }
    Map out = [:]
    defaults.each { key, value -> out[key] = value }
    for (entry in (config ?: [:]).entrySet()) {
        Object given = entry.value instanceof GString ? entry.value.toString() : entry.value
        String problem = typeProblem(defaults[entry.key], given)
        if (problem) {
            return [problem: "${step}: option '${entry.key}' must be ${problem} (got ${describe(given)})".toString()]
        }
        out[entry.key] = given
    }
    return [options: out]
}

@NonCPS
String typeProblem(Object dflt, Object given) {
    if (given == null || dflt == null) {
        return null
    }
    if (dflt instanceof Boolean && !(given instanceof Boolean)) {
        return 'true or false'
    }
    if (dflt instanceof Integer && !(given instanceof Integer && given >= 0)) {
        return 'a whole number >= 0'
    }
    if (dflt instanceof String && !(given instanceof String)) {
        return 'a string'
    }
    if (dflt instanceof Map && !(given instanceof Map)) {
        return 'a map'
    }
    if (dflt instanceof List && !(given instanceof List)) {
        return 'a list'
    }
    return null
}

@NonCPS
String describe(Object value) {
    return value instanceof String ? "'${value}'" : "${value} (${value.getClass().simpleName})"
}
