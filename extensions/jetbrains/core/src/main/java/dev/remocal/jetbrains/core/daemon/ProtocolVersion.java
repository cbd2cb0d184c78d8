package dev.remocal.jetbrains.core.daemon;

import java.util.Optional;

/**
 * The daemon contract's version, "MAJOR.MINOR" (docs/daemon-protocol.md, "Versions"): a client
 * that needs 1.N works with a 1.M daemon when M >= N. A daemon that reports none is older than 1.1.
 */
public record ProtocolVersion(int major, int minor) {
    /** What this plugin needs: session labels, overrides and kill. */
    public static final ProtocolVersion NEEDED = new ProtocolVersion(1, 1);

    public static Optional<ProtocolVersion> parse(String s) {
        if (s == null) {
            return Optional.empty();
        }
        String[] parts = s.trim().split("\\.");
        if (parts.length != 2) {
            return Optional.empty();
        }
        try {
            int major = Integer.parseInt(parts[0]);
            int minor = Integer.parseInt(parts[1]);
            return major < 0 || minor < 0 ? Optional.empty() : Optional.of(new ProtocolVersion(major, minor));
        } catch (NumberFormatException e) {
            return Optional.empty();
        }
    }

    public boolean satisfies(ProtocolVersion needed) {
        return major == needed.major && minor >= needed.minor;
    }

    @Override
    public String toString() {
        return major + "." + minor;
    }

    /**
     * Empty when a daemon reporting {@code reported} (null: none) serves a client that needs
     * {@code needed}; otherwise the message to show, naming both versions and the fix.
     */
    public static Optional<String> incompatibility(String reported, String daemonVersion, String binary, ProtocolVersion needed) {
        Optional<ProtocolVersion> v = parse(reported);
        String daemon = "the remocal daemon (remocal " + (daemonVersion == null ? "of unknown version" : daemonVersion) + ", " + binary + ")";
        String fix = "; update remocal, or choose a newer remocal binary in Settings | Tools | remocal";
        if (v.isEmpty()) {
            return Optional.of(daemon + (reported == null ? " reports no protocol version, so it is older than 1.1" : " reports protocol version \"" + reported + "\", which is not MAJOR.MINOR")
                    + ", but this plugin needs protocol " + needed + fix);
        }
        if (v.get().satisfies(needed)) {
            return Optional.empty();
        }
        if (v.get().major > needed.major) {
            return Optional.of(daemon + " speaks protocol " + v.get() + ", but this plugin speaks " + needed
                    + "; update the remocal plugin, or choose an older remocal binary in Settings | Tools | remocal");
        }
        return Optional.of(daemon + " speaks protocol " + v.get() + ", but this plugin needs " + needed + " or a later " + needed.major + ".x" + fix);
    }
}
