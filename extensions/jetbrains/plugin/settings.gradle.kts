// The remocal JetBrains plugin: the IDE glue here, the tested core from ../core
// compiled into the same jar (docs/jetbrains.md). Build: see CONTRIBUTING.md.
rootProject.name = "remocal-jetbrains"
