package dev.remocal.jetbrains.core.launch;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * How a session's variable combines with the launch's own value of it.
 *
 * <p>Most variables are the target's and replace the launch's (that is what running "as the
 * target" means). Variables that hold lists are merged instead, because the launch's value is
 * usually the IDE's own doing (a coverage or profiler agent in JAVA_TOOL_OPTIONS, a debugger's
 * --require in NODE_OPTIONS, another preload library) and clobbering it breaks the run:
 * <ul>
 *   <li>{@link Style#PREPEND_PATH}: LD_PRELOAD: the session's libraries first (the bootstrap
 *   joins the session before anything else runs), then the launch's;</li>
 *   <li>{@link Style#APPEND_OPTIONS}: JVM and Node option strings: the launch's options, then the
 *   session's (the target's value, present only when the configuration includes it);</li>
 *   <li>{@link Style#APPEND_PATH}: search paths (PYTHONPATH, NODE_PATH, CLASSPATH): the launch's
 *   entries first, so local code wins, then the session's.</li>
 * </ul>
 * Merging is idempotent: a value that already contains the session's part is left as it is.
 */
public final class EnvMerge {
    private EnvMerge() {}

    public enum Style {
        REPLACE(""), PREPEND_PATH(":"), APPEND_PATH(":"), APPEND_OPTIONS(" ");

        /** The separator written between the two parts. */
        public final String separator;

        Style(String separator) {
            this.separator = separator;
        }
    }

    static final Set<String> OPTIONS = Set.of("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "JAVA_OPTS",
            "MAVEN_OPTS", "GRADLE_OPTS", "NODE_OPTIONS");
    static final Set<String> PATHS = Set.of("PYTHONPATH", "NODE_PATH", "CLASSPATH");

    public static Style styleOf(String name) {
        if (name.equals("LD_PRELOAD")) {
            return Style.PREPEND_PATH;
        }
        if (OPTIONS.contains(name)) {
            return Style.APPEND_OPTIONS;
        }
        if (PATHS.contains(name)) {
            return Style.APPEND_PATH;
        }
        return Style.REPLACE;
    }

    /** The launch's env with the session's merged in, the launch's variables first. */
    public static Map<String, String> merge(Map<String, String> launch, Map<String, String> session) {
        Map<String, String> out = new LinkedHashMap<>(launch);
        session.forEach((k, v) -> out.put(k, mergeValue(k, launch.get(k), v)));
        return out;
    }

    /** One variable: the launch's value (or null) combined with the session's. */
    public static String mergeValue(String name, String launchValue, String sessionValue) {
        Style style = styleOf(name);
        if (style == Style.REPLACE || launchValue == null || launchValue.isBlank()) {
            return sessionValue;
        }
        if (sessionValue == null || sessionValue.isBlank()) {
            return launchValue;
        }
        return switch (style) {
            case PREPEND_PATH -> mergePaths(sessionValue, launchValue, style);
            case APPEND_PATH -> mergePaths(launchValue, sessionValue, style);
            case APPEND_OPTIONS -> containsTokens(launchValue, sessionValue) ? launchValue : launchValue + " " + sessionValue;
            case REPLACE -> sessionValue;
        };
    }

    /** first's entries, then second's that first lacks; LD_PRELOAD may separate with spaces too. */
    private static String mergePaths(String first, String second, Style style) {
        List<String> a = entries(first);
        List<String> out = new ArrayList<>(a);
        for (String e : entries(second)) {
            if (!out.contains(e)) {
                out.add(e);
            }
        }
        if (out.size() == a.size() && first.equals(String.join(style.separator, a))) {
            return first;
        }
        return String.join(style.separator, out);
    }

    private static List<String> entries(String v) {
        return Arrays.stream(v.split("[: ]+")).filter(s -> !s.isEmpty()).toList();
    }

    /** Whether haystack holds needle's whitespace-separated tokens as one consecutive run. */
    static boolean containsTokens(String haystack, String needle) {
        List<String> h = Arrays.stream(haystack.trim().split("\\s+")).toList();
        List<String> n = Arrays.stream(needle.trim().split("\\s+")).toList();
        return java.util.Collections.indexOfSubList(h, n) >= 0;
    }
}
