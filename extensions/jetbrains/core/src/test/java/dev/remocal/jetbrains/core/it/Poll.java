package dev.remocal.jetbrains.core.it;

import java.time.Duration;
import java.time.Instant;
import java.util.function.Supplier;

/** Retries a check with backoff until it holds or a deadline passes: for conditions nothing signals. */
final class Poll {
    private Poll() {}

    /** check returns null when satisfied, else why not (the last reason is in the failure). */
    static void until(Duration timeout, String what, Supplier<String> check) throws InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        long wait = 20;
        String why;
        while ((why = check.get()) != null) {
            if (Instant.now().isAfter(deadline)) {
                throw new AssertionError("after " + timeout.toSeconds() + " s, still not " + what + ": " + why);
            }
            Thread.sleep(wait); // backoff between checks, not synchronisation
            wait = Math.min(wait * 2, 500);
        }
    }
}
