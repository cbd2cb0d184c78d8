package dev.remocal.jetbrains.core.protocol;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.Optional;

/** The daemon's timestamps are RFC 3339 strings; views parse them when they need to. */
public final class Times {
    private Times() {}

    public static Optional<Instant> parse(String rfc3339) {
        if (rfc3339 == null || rfc3339.isEmpty()) {
            return Optional.empty();
        }
        try {
            return Optional.of(Instant.parse(rfc3339));
        } catch (DateTimeParseException e) {
            return Optional.empty();
        }
    }
}
