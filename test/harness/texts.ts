// Texts the tests and the benchmark share.

/** A long story file, as many lines as asked, every line different (so each run is real work): about the size of the trial's 20,000-line file. */
export function storyLines(lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(`Line ${i}: Once upon a time, Lily found ${i % 7} red balls in the park and gave them to her dog.`);
  return out.join('\n');
}
