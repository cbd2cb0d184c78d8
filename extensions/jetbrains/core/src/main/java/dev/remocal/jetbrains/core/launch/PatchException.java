package dev.remocal.jetbrains.core.launch;

/** A launch the patcher refuses; the message says what was wrong and what to do. */
public class PatchException extends Exception {
    private static final long serialVersionUID = 1L;

    public PatchException(String message) {
        super(message);
    }
}
