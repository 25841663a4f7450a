// Linked into `loom` in AddressSanitizer builds only (CMakeLists.txt, LOOM_SANITIZE).
//
// Open MPI loads its components (mca_*.so) with dlopen and dlcloses them in MPI_Finalize. The
// few allocations they keep for the life of the process are then reported by LeakSanitizer,
// which runs at exit, from "<unknown module>" frames: no suppression can name an unloaded
// library. This definition replaces libc's dlclose for the whole process (the executable is
// searched first and exports it: -Wl,--export-dynamic-symbol=dlclose), so every shared object
// stays mapped until exit and such leaks carry the plugin's name, which
// scripts/sanitize/lsan.supp suppresses. Nothing in Loom unloads a library.
extern "C" int dlclose(void*) { return 0; }
