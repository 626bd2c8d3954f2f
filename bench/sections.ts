// The benchmark's sections, run in this order by `npm run bench`.
import { engineSection } from './engine';

export const sections = {
  engine: engineSection,
};
