export function publishable(): { name: string; dir: string }[];
export function packAll(dest: string): string[];
