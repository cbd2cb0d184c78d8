package dev.remocal.jetbrains.core.targets;

import java.util.Optional;

/**
 * What the user picked: the daemon's ref ("deployment/api", "pid/4242", "targetless"), its
 * namespace (null for local processes), a container (null: the target's first) and the provider.
 */
public record TargetChoice(String ref, String namespace, String container, String provider) {
    public static final String TARGETLESS = "targetless";

    /** What remocal/session/start's target takes: the ref, plus "/container/NAME" when one was picked. */
    public String sessionTarget() {
        return container == null || container.isEmpty() ? ref : ref + "/container/" + container;
    }

    /** For the status bar and the toolbar: "deployment/api (shop)". */
    public String display() {
        String t = sessionTarget();
        return namespace == null || namespace.isEmpty() || "local".equals(namespace) ? t : t + " (" + namespace + ")";
    }

    String encode() {
        return String.join("\t", provider, nz(namespace), ref, nz(container));
    }

    static Optional<TargetChoice> decode(String s) {
        String[] p = s.split("\t", -1);
        if (p.length != 4 || p[2].isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(new TargetChoice(p[2], p[1].isEmpty() ? null : p[1], p[3].isEmpty() ? null : p[3], p[0]));
    }

    private static String nz(String s) {
        return s == null ? "" : s;
    }
}
