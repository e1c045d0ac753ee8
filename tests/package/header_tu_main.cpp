// Entry point for the header self-containment programs: they are built (compiled and linked), never run.
int main() {
  return 0;
}
